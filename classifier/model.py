"""The difficulty classifier: chat or text in, P(reasoning model does better) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifier.artifact import HeadArtifact, read_artifact
from classifier.base import Embedder
from classifier.embedding import SentenceEmbedder
from classifier.errors import ArtifactError
from classifier.explain import ExplainIndex, find_index
from classifier.features import FEATURE_NAMES, SURFACE_NAMES, text_features
from classifier.static_embedding import StaticEmbedder
from classifier.structure import QUESTION_RULES, fired_cues
from classifier.tenant_head import TenantHead
from classifier.text import text_for_scoring

__all__ = [
    "DEFAULT_ARTIFACT",
    "EMBEDDERS",
    "DifficultyClassifier",
    "build_features",
    "embed",
    "embedder_for",
    "embedding_options",
]

DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "default"
# The embedder an artifact's ``embedding.kind`` names.
EMBEDDERS: dict[str, type[SentenceEmbedder] | type[StaticEmbedder]] = {
    SentenceEmbedder.kind: SentenceEmbedder,
    StaticEmbedder.kind: StaticEmbedder,
}


def embed(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    question_weight: float = 0.0,
    question: str = "last_paragraph",
) -> NDArray[np.float64]:
    """Unit vectors for ``texts``: each text's embedding, plus its question's at a weight.

    A long prompt puts its question last, after a table or a program, where a
    window of 256 tokens never reaches it; ``question_weight`` > 0 adds the
    embedding of the request's own words, found by the rule ``question`` names
    in :data:`~classifier.structure.QUESTION_RULES`, and renormalises, so the
    head sees what is asked as well as the material.
    """
    vectors = embedder.transform(texts).astype(np.float64)
    if question_weight:
        question_of = QUESTION_RULES[question]
        questions = [question_of(text) for text in texts]
        # A one-paragraph request is its own question: adding its vector to itself and
        # renormalising changes nothing, so only the others pay for a second embedding.
        rows = [i for i, question in enumerate(questions) if question != texts[i]]
        if rows:
            extra = embedder.transform([questions[i] for i in rows]).astype(np.float64)
            vectors[rows] += question_weight * extra
            vectors[rows] /= np.maximum(np.linalg.norm(vectors[rows], axis=1, keepdims=True), 1e-12)
    return vectors


def embedding_options(embedding: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`embed` keywords an artifact's (or an explain index's) ``embedding`` records."""
    return {
        "question_weight": float(embedding.get("question_weight", 0.0)),
        "question": str(embedding.get("question", "last_paragraph")),
    }


def embedder_for(embedding: Mapping[str, Any]) -> Embedder:
    """A fitted embedder of the kind, model and window an artifact's ``embedding`` names."""
    factory = EMBEDDERS[embedding.get("kind", SentenceEmbedder.kind)]
    params: dict[str, Any] = {"model": embedding["model"]}
    if "max_seq_length" in factory().get_params() and "max_seq_length" in embedding:
        params["max_seq_length"] = int(embedding["max_seq_length"])
    return factory(**params).fit()


def build_features(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    question_weight: float = 0.0,
    question: str = "last_paragraph",
) -> NDArray[np.float64]:
    """The head's input for each text: its embedding, then :data:`FEATURE_NAMES`."""
    vectors = embed(embedder, texts, question_weight=question_weight, question=question)
    return np.hstack([vectors, text_features(texts)])


class DifficultyClassifier:
    """A fitted embedder and head, with the operating points they were shipped with.

    Examples
    --------
    >>> clf = DifficultyClassifier.load()            # doctest: +SKIP
    >>> clf.score_messages([{"role": "user", "content": "hi!"}])  # doctest: +SKIP
    0.02
    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        artifact: HeadArtifact,
        explain_index: ExplainIndex | None = None,
    ) -> None:
        self.embedder = embedder
        self.artifact = artifact
        self.explain_index = explain_index
        self._index_embedder: Embedder | None = None

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        embedder_factory: Callable[..., Embedder] | None = None,
        **embedder_params: Any,
    ) -> DifficultyClassifier:
        """Load an artifact directory (default: the shipped head) and its embedding model.

        The artifact says which embedder its head was trained over (its
        ``embedding.kind``, see :data:`EMBEDDERS`) and with which model, since
        a head only makes sense over the embeddings it was trained on.
        ``embedder_params`` (``backend``, ``cache_size``, ...) go to that
        embedder; those it does not take are dropped, so one configuration
        serves either kind (the static embedder has no backend and needs no
        cache: computing a vector costs less than looking one up would save).
        """
        location = Path(path) if path is not None else DEFAULT_ARTIFACT
        artifact = read_artifact(location)
        if embedder_factory is None:
            embedder_factory = EMBEDDERS[artifact.embedding.get("kind", SentenceEmbedder.kind)]
            accepted = embedder_factory().get_params()
            embedder_params = {k: v for k, v in embedder_params.items() if k in accepted}
            if "max_seq_length" in accepted and "max_seq_length" in artifact.embedding:
                # The window the head was trained with, not whatever the model defaults to.
                embedder_params.setdefault(
                    "max_seq_length", int(artifact.embedding["max_seq_length"])
                )
        embedder = embedder_factory(model=artifact.embedding["model"], **embedder_params).fit()
        if embedder.dim_ != int(artifact.embedding["dim"]):
            raise ArtifactError(
                location,
                f"head expects {artifact.embedding['dim']}-d embeddings from "
                f"{artifact.embedding['model']!r}, the loaded model gives {embedder.dim_}",
            )
        # The explain index beside the head, else the shipped one: it depends on an
        # embedding, not on a head, so it serves any head (see classifier.explain).
        here = location if location.is_dir() else location.parent
        return cls(
            embedder=embedder, artifact=artifact, explain_index=find_index(here, DEFAULT_ARTIFACT)
        )

    @property
    def thresholds(self) -> dict[str, float]:
        """Score above which each mode routes to the reasoning tier."""
        return dict(self.artifact.thresholds)

    def score_texts(
        self, texts: Sequence[str], *, tenant_head: TenantHead | None = None
    ) -> NDArray[np.float64]:
        """P(reasoning model does better) for each text; ``tenant_head`` corrects the shipped
        head's score for one tenant (:mod:`classifier.tenant_head`)."""
        if not texts:
            return np.empty(0)
        features = build_features(self.embedder, texts, **self._embedding_options)
        scores = self.artifact.head.score(features)
        return scores if tenant_head is None else tenant_head.score(features, scores)

    @property
    def _embedding_options(self) -> dict[str, Any]:
        return embedding_options(self.artifact.embedding)

    @property
    def fingerprint(self) -> str:
        """Names this head over this embedding model: scores cached under it stay valid."""
        return self.artifact.checksum[:16] or "unversioned"

    def text_of(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The text that is scored for a chat (see :mod:`classifier.text`)."""
        return text_for_scoring(messages, include_system=self.artifact.include_system)

    def score_messages(self, messages: Sequence[Mapping[str, Any]]) -> float:
        """P(reasoning model does better) for one chat; an empty one scores 0."""
        text = self.text_of(messages)
        return float(self.score_texts([text])[0]) if text else 0.0

    def input_features(self, messages: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        """What the head reads for one chat (embedding, then text features), without the text.

        Kept by shadow comparisons for tenants that keep no prompts, so retraining can
        use their graded pairs.
        """
        return build_features(self.embedder, [self.text_of(messages)], **self._embedding_options)[0]

    def explain_messages(
        self, messages: Sequence[Mapping[str, Any]], *, top_k: int = 3
    ) -> dict[str, Any]:
        """Why one chat scored as it did: :meth:`explain_text` of its scored text."""
        return self.explain_text(self.text_of(messages), top_k=top_k)

    def explain_text(self, text: str, *, top_k: int = 3) -> dict[str, Any]:
        """Why ``text`` scored as it did, from the artifact alone, as a JSON-ready dict.

        Returns
        -------
        dict
            ``score`` (as :meth:`score_texts` gives it), ``gate`` (P(the request
            calls for reasoning at all)), ``gain`` (the reasoning model's predicted
            gain before the gate's discount), ``cues`` (the structural cues that
            fired, names from :data:`classifier.structure.STRUCTURE_NAMES`),
            ``features`` (every feature beside the embedding, by name) and
            ``nearest_kinds``: the ``top_k`` kinds of training prompts nearest in
            embedding, from the explain index (see :mod:`classifier.explain`),
            each ``{"kind": "source/subset", "similarity", "records",
            "mean_gain", "expected_tier"}`` (``mean_gain`` is the mean measured
            reasoning-minus-fast score of an outcome kind, ``None`` for prompt
            kinds, whose ``expected_tier`` is set instead). No training text is
            read or returned; without an index ``nearest_kinds`` is empty. An
            empty text scores 0 and explains nothing.

        Examples
        --------
        >>> clf.explain_text("Can you show that the sum of two odd numbers is even?")
        ... # doctest: +SKIP
        {'score': 0.61, 'gate': 0.93, 'gain': 0.21, 'cues': ['proof_request'], ...}
        """
        if not text:
            return {"score": 0.0, "gate": 0.0, "gain": 0.0, "cues": [], "features": {},
                    "nearest_kinds": []}  # fmt: skip
        embedding = embed(self.embedder, [text], **self._embedding_options)
        extra = text_features([text])
        X = np.hstack([embedding, extra])
        head = self.artifact.head
        gate, gain = head.parts(X)
        return {
            "score": round(float(head.score(X)[0]), 6),
            "gate": round(float(gate[0]), 6),
            "gain": round(float(gain[0]), 6),
            "cues": fired_cues(extra[0, len(SURFACE_NAMES) :]),
            "features": {
                name: round(float(value), 4)
                for name, value in zip(FEATURE_NAMES, extra[0], strict=True)
            },
            "nearest_kinds": self._nearest_kinds(text, embedding[0], top_k),
        }

    def _nearest_kinds(
        self, text: str, embedding: NDArray[np.float64], top_k: int
    ) -> list[dict[str, Any]]:
        """The index's nearest kinds, in the index's own embedding space.

        The head's embedding serves when the index was built in the same space
        (the usual case, no extra work); otherwise the text is embedded again
        with the embedder the index names, loaded on first use.
        """
        index = self.explain_index
        if index is None:
            return []
        if not index.is_in_space(self.artifact.embedding):
            if self._index_embedder is None:
                self._index_embedder = embedder_for(index.embedding)
            embedding = embed(self._index_embedder, [text], **embedding_options(index.embedding))[0]
        return index.nearest(embedding, top_k)
