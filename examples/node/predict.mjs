#!/usr/bin/env node
// Classify images with a cifar-pack ONNX model from Node.js: onnxruntime-node for the model,
// pngjs (pure JavaScript) for PNG and sharp (libvips with libjpeg-turbo, the JPEG library Pillow
// uses) for JPEG, and a port of Pillow's BILINEAR resize, so that the 32x32 input is bit-for-bit
// what the Python Predictor feeds the model for both formats.
//
//   node predict.mjs --model ../../cifar_pack/pretrained/cifar10.onnx [--top-k 3] [--json] img.png ...
//
// Input contract (see docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to
// [0, 1] itself. Class names come from the sidecar "<model>.json" (onnxruntime-node can read
// custom metadata too, but the sidecar works in every runtime, browsers included).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";
import { PNG } from "pngjs";
import sharp from "sharp";

import { SIZE, resizeBilinear, toRGB } from "../../cifar_pack/serve/page/preprocess.mjs"; // shared with the web page

export { resizeBilinear, toRGB };

// ---------------------------------------------------------------------------------------------
// Decoding: file bytes -> {width, height, data: RGBA Uint8Array}

export async function decodeImage(file, maxPixels = Infinity) {
  const bytes = fs.readFileSync(file); // throws ENOENT / EISDIR, reported by the caller
  if (bytes.length === 0) throw new Error("empty file");
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    // The size from IHDR (bytes 16-23, big-endian) before anything is decoded.
    const pixels = bytes.length >= 24 ? bytes.readUInt32BE(16) * bytes.readUInt32BE(20) : 0;
    if (pixels > maxPixels) throw new Error(`refused: ${pixels / 1e6} megapixels, over the ${maxPixels / 1e6} MP limit`);
    const png = PNG.sync.read(bytes); // RGBA, 8 bits per channel (16-bit PNGs are scaled down)
    return { width: png.width, height: png.height, data: png.data };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    // libjpeg-turbo's default decode (accurate integer IDCT, fancy chroma upsampling), as Pillow's;
    // rotate() applies the EXIF orientation as Pillow's exif_transpose does; grey becomes RGB; an
    // embedded ICC profile is ignored, as Pillow ignores it (no colour management).
    const { data, info } = await sharp(bytes, { failOn: "error", limitInputPixels: Number.isFinite(maxPixels) ? maxPixels : false, ignoreIcc: true })
      .rotate()
      .toColourspace("srgb")
      .ensureAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  }
  throw new Error("not a PNG or JPEG image");
}

// ---------------------------------------------------------------------------------------------
// Model

// The sidecar "<model>.json": class names and the pixel cap (input.max_pixels, which
// CIFAR_PACK_MAX_PIXELS overrides, as in Python).
export function loadSidecar(modelPath) {
  const sidecar = `${modelPath}.json`;
  const meta = fs.existsSync(sidecar) ? JSON.parse(fs.readFileSync(sidecar, "utf8")) : {};
  const cap = Number(process.env.CIFAR_PACK_MAX_PIXELS || (meta.input && meta.input.max_pixels) || Infinity);
  return { labels: meta.class_names || null, maxPixels: cap };
}

export async function classify(modelPath, files, topK = 1) {
  const session = await ort.InferenceSession.create(modelPath);
  const { labels, maxPixels } = loadSidecar(modelPath);
  const results = [];
  for (const file of files) {
    let pixels;
    try {
      pixels = resizeBilinear(toRGB(await decodeImage(file, maxPixels))).data; // (32*32*3) uint8, HWC
    } catch (err) {
      results.push({ path: file, error: `${file}: ${err.code === "ENOENT" ? "no such file" : err.message}` });
      continue;
    }
    const input = new ort.Tensor("uint8", pixels, [1, SIZE, SIZE, 3]);
    const output = await session.run({ [session.inputNames[0]]: input });
    const probs = Array.from(output[session.outputNames[0]].data);
    const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, Math.max(1, topK));
    const top = order.map(([p, i]) => ({ label: labels ? labels[i] : String(i), index: i, probability: p }));
    results.push({ path: file, ...top[0], top_k: top, probabilities: probs });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error("usage: node predict.mjs --model MODEL.onnx [--top-k K] [--json] IMAGE...");
  process.exit(message ? 2 : 0);
}

async function main(argv) {
  let model = null;
  let topK = 1;
  let json = false;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--model") model = argv[++i];
    else if (arg === "--top-k") topK = Number.parseInt(argv[++i], 10);
    else if (arg === "--json") json = true;
    else if (arg === "--help" || arg === "-h") usage();
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else files.push(arg);
  }
  if (!model) usage("--model is required");
  if (!fs.existsSync(model)) {
    console.error(`error: ${model}: no such model file`);
    process.exit(1);
  }
  if (!Number.isInteger(topK) || topK < 1) usage("--top-k must be a positive integer");
  if (files.length === 0) usage("no images given");
  let results;
  try {
    results = await classify(model, files, topK);
  } catch (err) {
    console.error(`error: ${model}: ${String(err.message || err).split("\n")[0]}`);
    process.exit(1);
  }
  let failed = 0;
  for (const r of results) {
    if (r.error) {
      failed++;
      console.error(`error: ${r.error}`);
    } else if (!json) {
      const extra = topK > 1 ? "\t" + r.top_k.map((t) => `${t.label} ${t.probability.toFixed(4)}`).join(", ") : "";
      console.log(`${r.path}\t${r.label}\t${r.probability.toFixed(4)}${extra}`);
    }
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  // exitCode, not exit(): exit() cuts off what is still queued for a pipe (JSON over 64 KB).
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
