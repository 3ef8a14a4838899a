"""A Markdown model card written from measured results only (``cifar-pack evaluate --model-card``)."""

from __future__ import annotations

from pathlib import Path

from .config import CIFAR10_CLASSES
from .fileio import write_bytes_atomic
from .records import TRAIN_OPTIONS, TrainingRecord


def write_model_card(
    path: Path,
    report: dict,
    training: TrainingRecord,
    probe: dict,
    quantization: dict | None = None,
    flip_averaged: bool = False,
    calibration: dict | None = None,
) -> Path:
    """Write the card; every number in it comes from ``report`` (this evaluation), ``training``
    (the run's record), ``probe`` (``evaluation.out_of_scope_probe``) or ``quantization`` (the
    int8 gate's report in an int8 model's metadata); ``flip_averaged`` and ``calibration`` (export's
    temperature record) from the model's metadata."""
    lines = [
        *_model_lines(report, training, quantization, flip_averaged),
        *_use_lines(report, probe, calibration),
        *_data_lines(report, training),
        *_result_lines(report),
        *_ethics_lines(report, training),
        *_reproduce_lines(report, training, path, flip_averaged),
    ]
    return write_bytes_atomic(path, "\n".join(lines).encode())


# What each architecture is, by the run record's config (training/config.py's Architecture).
ARCHITECTURES = {
    "seed": "the classic Keras CIFAR-10 CNN (4 convolutions, 2 dense layers, dropout)",
    "fast": "a BatchNorm CNN after airbench (a frozen 2x2 whitening convolution, then three blocks of "
    "two convolutions with BatchNorm and ReLU, global max pooling; widths in docs/recipes.md)",
}


def is_cifar10(report: dict, training: TrainingRecord) -> bool:
    """Whether the model was trained on CIFAR-10 (its ten class names, in order): only then does the
    card describe CIFAR-10's collection and its caveats."""
    names = tuple(training.class_names or report["class_names"])
    return names == CIFAR10_CLASSES


def _model_lines(report: dict, training: TrainingRecord, quantization: dict | None, flip_averaged: bool) -> list[str]:
    names = report["class_names"]
    config = training.config or {}
    recipe = training.recipe or config.get("recipe")
    # Runs from before the fast recipe record no architecture: theirs was the seed CNN.
    architecture = config.get("architecture") or ("seed" if recipe in ("default", "seed") else None)
    trained = ""
    if training.train_seconds:
        trained = f"- Trained in {training.train_seconds:,.0f} s on {training.trained_on or 'an unrecorded CPU'}."
    return [
        f"# Model card: {Path(report['model']).name}",
        "",
        "## Model",
        f"- File: `{report['model']}` ({report['format']}). Input: uint8 RGB images, `[N, 32, 32, 3]`; "
        f"output: probabilities over {len(names)} classes."
        + (
            " Each image's probabilities are the mean of its own and its mirror image's"
            " (`export --flip-average`: two passes through the network)."
            if flip_averaged
            else ""
        ),
        f"- Architecture: {ARCHITECTURES.get(architecture or '', 'not recorded (a model cifar-pack did not train)')}.",
        *([trained] if trained else []),
        *_quantization_lines(quantization),
        "",
    ]


def _use_lines(report: dict, probe: dict, calibration: dict | None) -> list[str]:
    return [
        "## Intended use",
        f"- Classifying small photographs into exactly these classes: {', '.join(report['class_names'])}.",
        "- Teaching, demos and as a baseline for packaging/deployment pipelines.",
        "",
        "## Out-of-scope use",
        "- Images that show none of these classes: the model **still answers one of them**, often with high "
        "probability. It has no 'unknown' output. " + _confidence_sentence(report, calibration) + " "
        "Measured on inputs that are no class at all:",
        *[
            f"  - {kind} ({p['images']} images): mean top-1 probability {p['mean_top1_probability']:.2f}, "
            f"{p['share_above_0.5']:.0%} answered with probability >= 0.5, most often '{p['most_answered']}' "
            f"({p['most_answered_share']:.0%})."
            for kind, p in probe.items()
        ],
        "- Inputs are shrunk to 32x32 pixels: fine detail, small objects and text are lost.",
        "- Any decision about people, safety, security or money.",
        "",
    ]


def _confidence_sentence(report: dict, calibration: dict | None) -> str:
    """What the probability means: calibrated (and how well, on this evaluation) or not."""
    if calibration is None:
        return "Do not read the probability as a calibrated confidence."
    return (
        f"Its probabilities are calibrated (a temperature of {calibration['temperature']:.3f} fitted on "
        f"{calibration['samples']} validation images, folded into the graph: expected calibration error "
        f"{calibration['ece_before']:.1%} before, {report['ece']:.1%} in this evaluation), so among answers given "
        "with probability about 0.8, about 80 % are right: on images like the training data, not on these."
    )


def _data_lines(report: dict, training: TrainingRecord) -> list[str]:
    fraction, seed = training.split
    balance = report["class_balance"]
    val = f" (validation accuracy {training.val_accuracy:.2%})." if training.val_accuracy else "."
    if is_cifar10(report, training):
        about = (
            "- CIFAR-10 (Krizhevsky, 2009): 32x32 images collected from the web (the 80 Million Tiny Images "
            "collection) and labelled by paid annotators."
        )
    else:
        about = (
            f"- {len(report['class_names'])} classes from the folder names. How these images were collected and "
            "labelled is not recorded: write it here (who took them, with what consent, who labelled them)."
        )
    return [
        "## Training data",
        f"- Source: `{training.data_source or 'unknown'}`, sha256 `{training.data_sha256 or 'unknown'}`.",
        about,
        f"- Validation: a stratified {fraction:.0%} of the training split (seed {seed}), used to pick the best "
        f"epoch{val}",
        "",
        "## Evaluation data",
        f"- `{report['data']}` (sha256 `{report['data_sha256']}`), split `{report['split']}`, "
        f"{report['samples']} images.",
        f"- Class balance: {', '.join(f'{k} {v}' for k, v in balance['counts'].items())}; "
        f"largest/smallest class ratio {balance['max_to_min_ratio']:.2f} "
        f"({'balanced' if balance['balanced'] else 'IMBALANCED: overall accuracy hides the small classes'}).",
        "",
    ]


def _result_lines(report: dict) -> list[str]:
    per_class = report["per_class"]
    weakest = sorted(per_class.items(), key=lambda kv: kv[1]["recall"])[:3]
    return [
        "## Results",
        f"- Top-1 accuracy: **{report['accuracy']:.2%}** on {report['samples']} images.",
        f"- Expected calibration error: **{report['ece']:.2%}** (the top-1 probability in 15 bins; "
        "reliability.png beside the report shows each bin).",
        "",
        "| class | precision | recall | support |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {n} | {m['precision']:.3f} | {m['recall']:.3f} | {m['support']} |" for n, m in per_class.items()],
        "",
        "- Weakest classes (recall): " + ", ".join(f"{n} {m['recall']:.1%}" for n, m in weakest) + ".",
        "- Most confused pairs (true -> predicted, count): "
        + (", ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in report["most_confused"]) or "none"),
        "",
    ]


def _ethics_lines(report: dict, training: TrainingRecord) -> list[str]:
    ranked = sorted(report["per_class"].items(), key=lambda kv: kv[1]["recall"])
    (low_name, low), (high_name, high) = ranked[0], ranked[-1]
    gap = high["recall"] - low["recall"]
    provenance = (
        "- Provenance and consent: the images were gathered from the web without the consent of the people "
        "who took them or appear in them; the tiny-images collection they came from was withdrawn in 2020 "
        "over offensive labels. CIFAR-10's ten classes are hand-checked, but the provenance caveat stays."
        if is_cifar10(report, training)
        else "- Provenance and consent: not recorded for this data. Before sharing the model, state where the "
        "images came from and whether the people who took them or appear in them agreed to this use."
    )
    return [
        "## Ethical considerations",
        provenance,
        f"- Bias between classes: recall ranges from {low['recall']:.1%} ({low_name}) to "
        f"{high['recall']:.1%} ({high_name}), a gap of {100 * gap:.1f} points. A system built on "
        "this model serves some classes measurably worse than others; check the per-class table, not only "
        "the overall accuracy, against the classes that matter to your use.",
        "- The data reflects where and how the photos were taken"
        + (" (mostly North American/European web images)" if is_cifar10(report, training) else "")
        + "; expect lower accuracy on objects that look different elsewhere.",
        "",
    ]


def _reproduce_lines(report: dict, training: TrainingRecord, card: Path, flip_averaged: bool) -> list[str]:
    """The commands that recreate this model from its run record: train into the model's folder with
    every option the run used, export that run's model, evaluate as this card was."""
    model = Path(report["model"])
    run = model.parent
    train = f"cifar-pack train --data {training.data_source or 'DATA'} --out {run}"
    config = training.config or {}
    recipe = training.recipe or config.get("recipe")
    if recipe:
        train += f" --recipe {recipe}"
    if training.epochs or config.get("epochs"):
        train += f" --epochs {training.epochs or config.get('epochs')}"
    for option, name in TRAIN_OPTIONS.items():  # all of them: the commands must not depend on a recipe's today
        if name not in ("recipe", "epochs", "precision") and name in config:
            train += f" {option} {config[name]}"
    if training.precision:  # as resolved on the training machine, so another machine computes the same
        train += f" --precision {training.precision}"
    export = (" --int8" if model.name.endswith(".int8.onnx") else "") + (" --flip-average" if flip_averaged else "")
    known = bool(training.data_source and recipe and (training.epochs or config.get("epochs")))
    return [
        "## How to reproduce",
        "" if known else "The run record of this model is incomplete: fill in what the commands leave as capitals.",
        "```bash",
        'pip install -e ".[dev]"',
        train,
        f"cifar-pack export --onnx --model {run / 'model.keras'}{export}",
        f"cifar-pack evaluate --model {model} --data {report['data']} --split {report['split']} --model-card {card}",
        "```",
        "",
    ]


def _quantization_lines(q: dict | None) -> list[str]:
    """The int8 facts a user of another CPU needs: where the gate measured, and whether it holds there."""
    if not q or not isinstance(q.get("measured_on"), dict):
        return []
    avx2 = q.get("avx2") or {}
    holds = (
        "the weights cannot saturate onnxruntime's AVX2 kernel, so every CPU computes the same numbers"
        if avx2.get("saturation_free")
        else "the weights can saturate onnxruntime's AVX2 kernel: expect lower accuracy on AVX2 CPUs without VNNI"
    )
    return [
        f"- int8: {q.get('format')}; the gate measured top-1 {q.get('int8_accuracy', 0):.2%} against float32 "
        f"{q.get('float32_accuracy', 0):.2%} ({q.get('eval_set')}) on {q['measured_on'].get('cpu')}, "
        f"{q['measured_on'].get('int8_kernel')}; {holds}.",
    ]
