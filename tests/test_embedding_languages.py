"""The model embedded in C, C++, Java, Go and Rust (examples/<lang>/run), checked against Predictor.

One contract for every example: `examples/<lang>/run MODEL FILE...` builds what it needs on its
first run and prints one line per image, path TAB label TAB every class probability, and
`path TAB error: why` for a file it cannot read (exit 1, the other files still answered).

The images are the ones people have (tests/helpers/odd_images.py: every PNG mode and bit depth,
gAMA/iCCP/eXIf, baseline/progressive/4:2:0/4:2:2/4:4:4/grey/CMYK/YCCK JPEGs, EXIF orientations,
1x1 to 7 MP, odd names) made from real photos, plus the quick-start samples, plus the hostile
files Pillow refuses. Every run happens with no Python on PATH and onnxruntime from a non-Python
source (examples/onnxruntime-lib: npm's onnxruntime-node; Java: Maven Central's jar).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.errors import InputError
from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

from .helpers.examples import EXAMPLES, LANGUAGES, TOOLCHAINS, assert_same_answer, python_free_env, run_example
from .helpers.odd_images import write_corpus
from .helpers.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_KB = 200 * 1024  # refusing a 26000x26000 PNG from its header must stay under this

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """{"good": files Python answers, "hostile": files Python refuses, "want": Python's probabilities}."""
    good, hostile = write_corpus(tmp_path_factory.mktemp("odd images"))
    good += SAMPLES
    for path in hostile:  # the corpus itself is right: Python refuses each of these
        with pytest.raises(InputError):
            load_image(path)
    predictor = Predictor(BUNDLED_MODEL, device="cpu")
    want = predictor.predict_proba(np.stack([load_image(p) for p in good]))
    return {"good": good, "hostile": hostile, "want": want, "labels": predictor.class_names}


@pytest.fixture(scope="module")
def no_python(tmp_path_factory) -> dict[str, str]:
    env = python_free_env(tmp_path_factory.mktemp("path without python"))
    assert subprocess.run(["bash", "-c", "command -v python3"], env=env).returncode != 0
    return env


def _toolchain_present(lang: str) -> None:
    # The polyglot machine has every toolchain: a missing one is a broken machine, so fail, don't skip.
    missing = [tool for tool in TOOLCHAINS[lang] if shutil.which(tool) is None]
    assert not missing, f"{lang}: {', '.join(missing)} not on PATH"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_answers_every_image_as_python_does(lang, corpus, no_python):
    _toolchain_present(lang)
    answer = run_example(
        lang, BUNDLED_MODEL, corpus["hostile"][:3] + corpus["good"] + corpus["hostile"][3:], env=no_python
    )
    assert answer.returncode == 1, answer.stderr[-3000:]  # some files were refused, the rest answered
    assert "Traceback" not in answer.stderr and "libjpeg" not in answer.stderr.lower()
    worst = 0.0
    for path, row in zip(corpus["good"], corpus["want"]):
        assert str(path) in answer.rows, (path.name, answer.errors.get(str(path)), answer.stderr[-2000:])
        label, probs = answer.rows[str(path)]
        assert_same_answer(label, probs, row, corpus["labels"], path.name)
        worst = max(worst, float(np.abs(probs - row).max()))
    for path in corpus["hostile"]:
        assert str(path) in answer.errors, (path.name, answer.stderr[-2000:])
        assert str(path) not in answer.rows
    assert len(answer.rows) == len(corpus["good"])
    print(
        f"{lang}: {len(corpus['good'])} images as Python (max difference {worst:.1e}), "
        f"{len(corpus['hostile'])} hostile files refused"
    )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_huge_png_is_refused_from_its_header_in_little_memory(lang, corpus, no_python):
    """A 26000x26000 PNG (~1 MB on disk, 676 MP) costs gigabytes if decoded before the cap."""
    _toolchain_present(lang)
    huge = next(p for p in corpus["hostile"] if "26000" in p.name)
    run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=no_python)  # builds, so the build is not measured
    # Peak RSS of the example alone: a helper process whose only child is the example (the run
    # script execs it), so RUSAGE_CHILDREN is that process tree's largest resident set.
    measure = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", measure, str(EXAMPLES / lang / "run"), str(BUNDLED_MODEL), str(huge), str(SAMPLES[0])],
        capture_output=True,
        text=True,
        env=no_python,
        timeout=600,
    )
    code, peak_kb = map(int, proc.stdout.splitlines()[0].split())
    assert code == 1 and "676 megapixels" in proc.stdout, proc.stdout
    print(f"{lang}: huge PNG refused, peak RSS {peak_kb / 1024:.0f} MB")
    assert peak_kb < MEMORY_LIMIT_KB, f"{lang}: {peak_kb / 1024:.0f} MB"


def test_pixel_cap_comes_from_the_model_and_the_environment(corpus, no_python):
    """The cap is metadata_props["input"]["max_pixels"] (Python's default, written at export);
    CIFAR_PACK_MAX_PIXELS overrides it in every language as it does in Python."""
    assert Predictor(BUNDLED_MODEL).metadata["input"]["max_pixels"] > 0
    photo = next(p for p in corpus["good"] if p.name == "photo 400x300.jpg")  # 120,000 pixels
    for lang in LANGUAGES:
        answer = run_example(
            lang, BUNDLED_MODEL, [photo, SAMPLES[0]], env=no_python | {"CIFAR_PACK_MAX_PIXELS": "100000"}
        )
        assert answer.returncode == 1 and "over the 0 MP limit" not in answer.stderr, (lang, answer.stderr)
        assert "400x300" in answer.errors[str(photo)] and str(SAMPLES[0]) in answer.rows, (lang, answer.stderr)
        answer = run_example(lang, BUNDLED_MODEL, [photo], env=no_python | {"CIFAR_PACK_MAX_PIXELS": "lots"})
        assert answer.returncode == 2 and "CIFAR_PACK_MAX_PIXELS" in answer.stderr, (lang, answer.stderr)


def test_java_survives_a_long_classpath_and_a_thousand_paths(tmp_path, no_python):
    """onnxruntime 1.29's telemetry crashed the JVM (SIGSEGV) once the command line passed ~5 KB."""
    _toolchain_present("java")
    files = []
    for i in range(1000):
        files.append(tmp_path / f"image {i:04d} é.jpg")
        files[-1].write_bytes(SAMPLES[i % len(SAMPLES)].read_bytes())
    folders = ":".join(f"/opt/app/lib/dependency-{i:05d}.jar" for i in range(3500))  # a real app's classpath
    assert len(folders) >= 100_000
    answer = run_example("java", BUNDLED_MODEL, files, env=no_python | {"CLASSPATH": folders})
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert sorted(answer.rows) == sorted(map(str, files))


def test_onnxruntime_library_is_not_pythons(no_python):
    lib = subprocess.run(
        [str(EXAMPLES / "onnxruntime-lib")], capture_output=True, text=True, env=no_python, timeout=600
    )
    assert lib.returncode == 0, lib.stderr
    assert "site-packages" not in lib.stdout and Path(lib.stdout.strip()).is_file()
    missing = subprocess.run(
        [str(EXAMPLES / "onnxruntime-lib")],
        capture_output=True,
        text=True,
        env=no_python | {"ORT_LIB_DIR": "/nonexistent"},
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "ORT_LIB_DIR" in missing.stderr


def test_ort_lib_dir_counts_on_every_run_not_only_the_first_build(tmp_path, no_python):
    """The C and C++ binaries find libonnxruntime.so.1 beside them; each run re-points it."""
    (tmp_path / "empty").mkdir()
    for lang in ("c", "cpp"):
        assert run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=no_python).returncode == 0
        answer = run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=no_python | {"ORT_LIB_DIR": str(tmp_path / "empty")})
        assert answer.returncode == 2 and "holds no libonnxruntime" in answer.stderr, answer.stderr
        assert run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=no_python).returncode == 0


def test_no_image_path_from_the_file_name(tmp_path, no_python):
    """The decoder comes from the bytes: a JPEG named .png and a PNG named .jpg are both read."""
    jpeg_as_png = tmp_path / "photo.png"
    jpeg_as_png.write_bytes(SAMPLES[0].read_bytes())
    for lang in LANGUAGES:
        answer = run_example(lang, BUNDLED_MODEL, [jpeg_as_png], env=no_python)
        assert answer.returncode == 0 and str(jpeg_as_png) in answer.rows, (lang, answer.stderr)


def test_examples_never_name_a_pixel_cap_of_their_own():
    """One number: the cap lives in cifar_pack/runtime/config.py and travels in the model."""
    folders = [EXAMPLES, ROOT / "cifar_pack" / "serve" / "page"]
    sources = [p for f in folders for p in f.rglob("*") if p.suffix in {".c", ".cpp", ".go", ".rs", ".java", ".mjs"}]
    sources = [
        p for p in sources if "target" not in p.parts and "node_modules" not in p.parts and "build" not in p.parts
    ]
    assert sources
    for path in sources:
        text = path.read_text()
        assert "50000000" not in text and "50_000_000" not in text, path


@pytest.mark.parametrize("lang", LANGUAGES)
def test_missing_library_is_one_line(lang, tmp_path, no_python):
    if lang == "java":  # onnxruntime comes inside the Maven jar: a missing JDK is the failure to say
        env = no_python | {"PATH": str(tmp_path)}
        for tool in ("bash", "dirname", "find", "env"):
            (tmp_path / tool).symlink_to(shutil.which(tool, path=no_python["PATH"]))
        answer = run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=env)
        assert answer.returncode == 2 and "JDK" in answer.stderr and "Traceback" not in answer.stderr, answer.stderr
        return
    # Each language's own way of naming the library, pointed at nothing.
    missing = {"go": {"ORT_LIB": str(tmp_path / "none.so")}, "rust": {"ORT_DYLIB_PATH": str(tmp_path / "none.so")}}
    answer = run_example(
        lang, BUNDLED_MODEL, SAMPLES[:1], env=no_python | missing.get(lang, {"ORT_LIB_DIR": str(tmp_path)})
    )
    assert answer.returncode == 2, answer.stderr
    lines = [line for line in answer.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in answer.stderr and "panicked" not in answer.stderr, answer.stderr
    assert os.path.basename(str(tmp_path)) in lines[0] or "ORT_LIB_DIR" in lines[0], lines


def test_fifo_folder_and_missing_file_are_refused_without_hanging(tmp_path, no_python):
    """Opening a FIFO blocks until a writer comes: each example must look before it opens."""
    os.mkfifo(tmp_path / "fifo.jpg")
    (tmp_path / "folder.png").mkdir()
    odd = [tmp_path / "fifo.jpg", tmp_path / "folder.png", tmp_path / "missing.jpg"]
    for lang in LANGUAGES:
        answer = run_example(lang, BUNDLED_MODEL, odd + SAMPLES[:1], env=no_python, timeout=300)
        assert answer.returncode == 1 and str(SAMPLES[0]) in answer.rows, (lang, answer.stderr)
        assert "regular file" in answer.errors[str(odd[0])] and "directory" in answer.errors[str(odd[1])], lang
        assert str(odd[2]) in answer.errors, (lang, answer.stderr)


def test_other_formats_are_named_in_the_error(tmp_path, no_python):
    """The examples read PNG and JPEG (the contract); a GIF or BMP gets a line saying what it is."""
    photo = Image.open(SAMPLES[0])
    photo.save(tmp_path / "photo.gif")
    photo.save(tmp_path / "photo.bmp")
    for lang in LANGUAGES:
        answer = run_example(lang, BUNDLED_MODEL, [tmp_path / "photo.gif", tmp_path / "photo.bmp"], env=no_python)
        assert answer.returncode == 1, (lang, answer.stderr)
        assert answer.errors[str(tmp_path / "photo.gif")].startswith("a GIF image"), (lang, answer.stderr)
        assert answer.errors[str(tmp_path / "photo.bmp")].startswith("a BMP image"), (lang, answer.stderr)
