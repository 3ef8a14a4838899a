"""A Markdown model card written from measured results only (``cifar-pack evaluate --model-card``)."""

from __future__ import annotations

from pathlib import Path

from .data import split_params
from .fileio import write_bytes_atomic


def write_model_card(
    path: Path, report: dict, training: dict | None, probe: dict, quantization: dict | None = None
) -> Path:
    """Write the card; every number in it comes from ``report`` (this evaluation), ``training``
    (the run's record), ``probe`` (``evaluate.out_of_scope_probe``) or ``quantization`` (the
    int8 gate's report in an int8 model's metadata)."""
    training = training or {}
    fraction, seed = split_params(training)
    per_class = report["per_class"]
    ranked = sorted(per_class.items(), key=lambda kv: kv[1]["recall"])
    weakest, strongest = ranked[:3], ranked[-1]
    gap = strongest[1]["recall"] - ranked[0][1]["recall"]
    names = report["class_names"]
    balance = report["class_balance"]
    lines = [
        f"# Model card: {Path(report['model']).name}",
        "",
        "## Model",
        f"- File: `{report['model']}` ({report['format']}). Input: uint8 RGB images, `[N, 32, 32, 3]`; "
        f"output: probabilities over {len(names)} classes.",
        "- Architecture: the classic Keras CIFAR-10 CNN (4 convolutions, 2 dense layers, dropout), "
        "2.17 M parameters for 10 classes.",
        *_quantization_lines(quantization),
        "",
        "## Intended use",
        f"- Classifying small photographs into exactly these classes: {', '.join(names)}.",
        "- Teaching, demos and as a baseline for packaging/deployment pipelines.",
        "",
        "## Out-of-scope use",
        "- Images that show none of these classes: the model **still answers one of them**, often with high "
        "probability. It has no 'unknown' output; do not read the probability as a calibrated confidence. "
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
        "## Training data",
        f"- Source: `{training.get('data_source') or training.get('source') or 'unknown'}`, "
        f"sha256 `{training.get('data_sha256') or training.get('sha256') or 'unknown'}`.",
        "- CIFAR-10 (Krizhevsky, 2009): 32x32 images collected from the web (the 80 Million Tiny Images "
        "collection) and labelled by paid annotators.",
        f"- Validation: a stratified {fraction:.0%} of the training split "
        f"(seed {seed}), used to pick the best epoch"
        + (f" (validation accuracy {training['val_accuracy']:.2%})." if training.get("val_accuracy") else "."),
        "",
        "## Evaluation data",
        f"- `{report['data']}` (sha256 `{report['data_sha256']}`), split `{report['split']}`, "
        f"{report['samples']} images.",
        f"- Class balance: {', '.join(f'{k} {v}' for k, v in balance['counts'].items())}; "
        f"largest/smallest class ratio {balance['max_to_min_ratio']:.2f} "
        f"({'balanced' if balance['balanced'] else 'IMBALANCED: overall accuracy hides the small classes'}).",
        "",
        "## Results",
        f"- Top-1 accuracy: **{report['accuracy']:.2%}** on {report['samples']} images.",
        "",
        "| class | precision | recall | support |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {n} | {m['precision']:.3f} | {m['recall']:.3f} | {m['support']} |" for n, m in per_class.items()],
        "",
        "- Weakest classes (recall): " + ", ".join(f"{n} {m['recall']:.1%}" for n, m in weakest) + ".",
        "- Most confused pairs (true -> predicted, count): "
        + (", ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in report["most_confused"]) or "none"),
        "",
        "## Ethical considerations",
        "- Provenance and consent: the images were gathered from the web without the consent of the people "
        "who took them or appear in them; the tiny-images collection they came from was withdrawn in 2020 "
        "over offensive labels. CIFAR-10's ten classes are hand-checked, but the provenance caveat stays.",
        f"- Bias between classes: recall ranges from {ranked[0][1]['recall']:.1%} ({ranked[0][0]}) to "
        f"{strongest[1]['recall']:.1%} ({strongest[0]}), a gap of {100 * gap:.1f} points. A system built on "
        "this model serves some classes measurably worse than others; check the per-class table, not only "
        "the overall accuracy, against the classes that matter to your use.",
        "- The data reflects where and how the photos were taken (mostly North American/European web images); "
        "expect lower accuracy on objects that look different elsewhere.",
        "",
        "## How to reproduce",
        "```bash",
        'pip install -e ".[dev]"',
        f"cifar-pack train --data {training.get('data_source') or training.get('source') or 'DATA'} --out artifacts",
        "cifar-pack export --onnx --model artifacts/model.keras --int8",
        f"cifar-pack evaluate --model {report['model']} --data {report['data']} --split {report['split']} "
        "--model-card MODEL_CARD.md",
        "```",
        "",
    ]
    return write_bytes_atomic(path, "\n".join(lines).encode())


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
