"""The public API is what each package's __all__ says, and nothing is missing from it."""

import pytest

import classifier
import router


@pytest.mark.parametrize("package", [router, classifier])
def test_all_names_exist_and_are_public(package):
    assert sorted(package.__all__) == sorted(set(package.__all__))
    for name in package.__all__:
        assert hasattr(package, name), f"{package.__name__}.{name} is in __all__ but missing"
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(package.__name__)
    }
    assert public <= set(package.__all__), (
        f"public but not exported: {public - set(package.__all__)}"
    )
