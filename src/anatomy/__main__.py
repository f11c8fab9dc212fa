"""`python -m anatomy prepare`: de-quantize the default models into the cache once, before a build."""

import sys
import time

from .loading import DEFAULT_MODELS, cache_dir, load


def main(argv: list[str]) -> int:
    if argv[:1] != ["prepare"]:
        print("usage: python -m anatomy prepare   (fills the model cache at", cache_dir(), ")")
        return 2
    for name in DEFAULT_MODELS:
        t = time.perf_counter()
        model = load(name)
        print(f"{name}: ready in {time.perf_counter() - t:.1f} s  ({model!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
