"""Who is calling: tenants from the config file and from the admin API.

Config tenants are fixed for the life of the process; their keys may be
written in plain text (development) or as SHA-256 digests. Tenants created
through the admin API, and keys issued to any tenant, live in Redis so every
replica sees them:

    thinkroute:tenants          hash: name -> policy (TenantConfig as JSON)
    thinkroute:apikeys          hash: key digest -> "tenant|key id"
    thinkroute:{t}:keys         hash: key id -> {"prefix", "created"}

Deleting a tenant deletes everything kept under its name (spend, usage,
decision log and prompts, feedback, cached answers), so a new tenant of the
same name inherits nothing. A key is shown once, when issued; only its SHA-256 digest is stored. A
replica remembers a key it looked up in Redis for ``KEY_CACHE_S`` seconds,
so a revoked key stops working on every replica within that time (at once
on the replica that revoked it).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from router.config import TenantConfig, hash_api_key
from router.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from router.state.store import Store

__all__ = ["IssuedKey", "TenantDirectory", "bearer_key"]

TENANTS_KEY = "thinkroute:tenants"
API_KEYS_KEY = "thinkroute:apikeys"
KEY_CACHE_S = 2.0
ISSUED_KEY_PREFIX = "sk-tr-"
PURGE_BATCH = 500  # keys per UNLINK when a deleted tenant's data is removed


@dataclass(frozen=True, slots=True)
class IssuedKey:
    tenant: str
    key_id: str
    key: str  # the only time the plain key exists outside the client


def bearer_key(authorization: str | None) -> str:
    """The key from an ``Authorization: Bearer`` header, or a 401 saying what is missing."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError(
            "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    return key.strip()


class TenantDirectory:
    """Finds the tenant for an API key and manages tenants and keys made at run time."""

    def __init__(self, config_tenants: list[TenantConfig], store: Store | None) -> None:
        self.config_tenants = {tenant.name: tenant for tenant in config_tenants}
        self._config_digests = [(d, t) for t in config_tenants for d in t.key_digests]
        self.store = store
        self._remembered: dict[str, tuple[float, TenantConfig]] = {}

    # -- authentication -------------------------------------------------------------

    async def authenticate(self, key: str) -> TenantConfig:
        digest = hash_api_key(key)
        found = None
        for stored, tenant in self._config_digests:  # every entry, so timing says nothing
            if hmac.compare_digest(stored, digest):
                found = tenant
        if found is not None:
            return found
        remembered = self._remembered.get(digest)
        if remembered is not None and remembered[0] > time.monotonic():
            return remembered[1]
        if self.store is None:
            raise AuthenticationError("Incorrect API key provided.")
        owner = await self.store.call(self.store.client.hget(API_KEYS_KEY, digest))
        if owner is None:
            raise AuthenticationError("Incorrect API key provided.")
        tenant = await self.get(owner.decode().split("|", 1)[0])
        self._remembered[digest] = (time.monotonic() + KEY_CACHE_S, tenant)
        return tenant

    # -- tenants ----------------------------------------------------------------------

    async def get(self, name: str) -> TenantConfig:
        if name in self.config_tenants:
            return self.config_tenants[name]
        raw = await self._store().call(self._store().client.hget(TENANTS_KEY, name))
        if raw is None:
            raise NotFoundError(f"no tenant named '{name}'", code="tenant_not_found")
        return TenantConfig.model_validate_json(raw)

    async def list_tenants(self) -> list[dict[str, Any]]:
        """Every tenant, from the config file and the admin API, as the admin API shows it."""
        stored = await self._store().call(self._store().client.hgetall(TENANTS_KEY))
        tenants = [(t, "config") for t in self.config_tenants.values()]
        tenants += [(TenantConfig.model_validate_json(raw), "api") for raw in stored.values()]
        return [describe(t, source) for t, source in sorted(tenants, key=lambda p: p[0].name)]

    async def create(self, body: Any) -> TenantConfig:
        tenant = _policy(body)
        if tenant.api_keys or tenant.api_key_hashes:
            raise InvalidRequestError(
                "keys are issued with POST /v1/tenants/{name}/keys, not set in the policy",
                param="api_keys",
            )
        if tenant.name in self.config_tenants:
            raise ConflictError(f"tenant '{tenant.name}' is defined in the config file")
        created = await self._store().call(
            self._store().client.hsetnx(TENANTS_KEY, tenant.name, tenant.model_dump_json())
        )
        if not created:
            raise ConflictError(f"tenant '{tenant.name}' already exists")
        return tenant

    async def update(self, name: str, changes: Any) -> TenantConfig:
        if name in self.config_tenants:
            raise ConflictError(
                f"tenant '{name}' is defined in the config file; change it there",
                code="tenant_in_config",
            )
        if not isinstance(changes, dict) or "name" in changes or "api_keys" in changes:
            raise InvalidRequestError("send an object of policy fields (not name or api_keys)")
        current = await self.get(name)
        tenant = _policy({**current.model_dump(), **changes})
        await self._store().call(
            self._store().client.hset(TENANTS_KEY, name, tenant.model_dump_json())
        )
        self._forget(name)
        return tenant

    async def delete(self, name: str) -> None:
        if name in self.config_tenants:
            raise ConflictError(
                f"tenant '{name}' is defined in the config file; remove it there",
                code="tenant_in_config",
            )
        await self.get(name)
        for key_id in await self._key_ids(name):
            await self.revoke_key(name, key_id)
        await self._store().call(self._store().client.hdel(TENANTS_KEY, name))
        self._forget(name)
        await self._purge(name)

    # -- keys ---------------------------------------------------------------------------

    async def issue_key(self, name: str) -> IssuedKey:
        await self.get(name)
        key = ISSUED_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = secrets.token_hex(6)
        digest = hash_api_key(key)
        record = json.dumps({"prefix": key[:10], "created": int(time.time()), "digest": digest})
        client = self._store().client
        await self._store().call(client.hset(_keys_key(name), key_id, record))
        await self._store().call(client.hset(API_KEYS_KEY, digest, f"{name}|{key_id}"))
        return IssuedKey(tenant=name, key_id=key_id, key=key)

    async def list_keys(self, name: str) -> list[dict[str, Any]]:
        await self.get(name)
        stored = await self._store().call(self._store().client.hgetall(_keys_key(name)))
        keys = []
        for key_id, raw in sorted(stored.items()):
            record = json.loads(raw)
            keys.append({"id": key_id.decode(), "prefix": record["prefix"],
                         "created": record["created"]})  # fmt: skip
        return keys

    async def revoke_key(self, name: str, key_id: str) -> None:
        client = self._store().client
        raw = await self._store().call(client.hget(_keys_key(name), key_id))
        if raw is None:
            raise NotFoundError(f"tenant '{name}' has no key '{key_id}'", code="key_not_found")
        digest = json.loads(raw)["digest"]
        # The lookup entry goes first: from then on the key authenticates nowhere.
        await self._store().call(client.hdel(API_KEYS_KEY, digest))
        await self._store().call(client.hdel(_keys_key(name), key_id))
        self._remembered.pop(digest, None)

    # -- helpers ------------------------------------------------------------------------

    async def _purge(self, name: str) -> None:
        """Delete every key kept under the tenant's name: spend, usage, rate windows,
        reservations, decision log (with its prompts), feedback, cached answers and scores.

        They all share the ``thinkroute:{name}:`` prefix, whose hash tag puts them in
        one cluster slot, so each batch is one multi-key UNLINK. A request already
        past authentication may still write a figure after this; the tenant is gone,
        and a new tenant of the same name starts from (almost) nothing.
        """
        store = self._store()
        pattern = f"thinkroute:{{{_glob_escape(name)}}}:*"
        batch: list[bytes] = []
        async for key in store.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= PURGE_BATCH:
                await store.call(store.client.unlink(*batch))
                batch = []
        if batch:
            await store.call(store.client.unlink(*batch))

    async def _key_ids(self, name: str) -> list[str]:
        stored = await self._store().call(self._store().client.hkeys(_keys_key(name)))
        return [key_id.decode() for key_id in stored]

    def _forget(self, name: str) -> None:
        for digest, (_, tenant) in list(self._remembered.items()):
            if tenant.name == name:
                del self._remembered[digest]

    def _store(self) -> Store:
        if self.store is None:
            raise StoreUnavailableError("tenant management needs Redis, and none is configured")
        return self.store


def describe(tenant: TenantConfig, source: str) -> dict[str, Any]:
    """A tenant's policy as the admin API shows it: never its keys."""
    policy = tenant.model_dump(exclude={"api_keys", "api_key_hashes"})
    return {**policy, "source": source}


def _keys_key(name: str) -> str:
    return f"thinkroute:{{{name}}}:keys"


def _glob_escape(text: str) -> str:
    """``text`` matched literally by Redis's glob patterns (SCAN MATCH)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _policy(body: Any) -> TenantConfig:
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        return TenantConfig.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(body)"
        raise InvalidRequestError(
            f"{field}: {first['msg'].removeprefix('Value error, ')}", param=field
        ) from None
