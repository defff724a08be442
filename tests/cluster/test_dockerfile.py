"""cluster/Dockerfile builds on the pinned Ray GPU image, copies files that exist, installs teran[ray,gpu]."""

from __future__ import annotations

import re
import shlex

from cluster_files import DOCKERFILE, IMAGE_ROOT, RAY_IMAGE, RAYJOB_FILES, REPO, load_yaml


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped.

    Example:
        >>> instructions("# c\\nFROM x\\nRUN a \\\\\\n    && b\\n")
        [('FROM', 'x'), ('RUN', 'a && b')]
    """
    joined = re.sub(r"\\\n\s*", "", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(word.upper(), rest.strip()) for word, _, rest in (line.partition(" ") for line in lines)]


def dockerfile_problems(text: str) -> list[str]:
    """What would make the build fail or drift from the pins, one line each."""
    steps = instructions(text)
    problems = [] if steps[0] == ("FROM", RAY_IMAGE) else [f"FROM: got {steps[0][1]!r}, expected {RAY_IMAGE!r}"]
    for word, args in steps:
        if word == "COPY":
            *sources, _ = [a for a in shlex.split(args) if not a.startswith("--")]
            problems += [f"COPY {src}: no such file in the repository" for src in sources if not (REPO / src).exists()]
    if not any(word == "RUN" and 'pip install --no-cache-dir ".[ray,gpu]"' in args for word, args in steps):
        problems.append('RUN: expected pip install --no-cache-dir ".[ray,gpu]" (the CUDA torch and faiss-gpu)')
    return problems


def copied_dirs(text: str) -> list[str]:
    return [shlex.split(args)[-1].rstrip("/") for word, args in instructions(text) if word == "COPY"]


def test_dockerfile_is_consistent():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_typo_in_a_copied_path_is_caught():
    typo = DOCKERFILE.read_text().replace("COPY --chown=ray:users teran_core/", "COPY --chown=ray:users teran_cor/")
    assert dockerfile_problems(typo) == ["COPY teran_cor/: no such file in the repository"]


def test_configs_named_by_rayjobs_are_in_the_image():
    dirs = copied_dirs(DOCKERFILE.read_text())
    for path in RAYJOB_FILES:
        config = load_yaml(path)["spec"]["entrypoint"].split("--config ")[1].split()[0]
        relative = config.removeprefix(IMAGE_ROOT + "/")
        assert (REPO / relative).is_file(), f"{path.name}: {config} is not in the repository"
        assert any(relative.startswith(d + "/") for d in dirs), f"{path.name}: {relative} is not copied into the image"
