// The page's one script: choose or drop images, run the model on the server (POST /predict) or in
// this browser (onnxruntime-web, WebAssembly), show what the model saw and what it said.
// Preprocessing is the shared Pillow-exact port (preprocess.mjs), so both modes see the same bytes
// as Python's Predictor. Tests drive the page through data-testid attributes only.
import { SIZE, resizeBilinear, toRGB } from "/static/preprocess.mjs";

const TOP_K = 3;
const $ = (id) => document.getElementById(id);
let labels = null;
let maxPixels = Infinity; // the model's declared cap (input.max_pixels in /model.json), as the CLI's
let session = null; // onnxruntime-web session, created on first use in browser mode
let ort = null;

function authHeaders() {
  const key = sessionStorage.getItem("cifar-pack-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function fetchOk(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("key-box").hidden = false;
    $("api-key").focus();
    throw new Error("this server needs an API key: enter it above, then choose the images again");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function loadLabels() {
  const meta = await (await fetchOk("/model.json")).json();
  labels = meta.class_names;
  maxPixels = (meta.input && meta.input.max_pixels) || Infinity;
  $("model-line").textContent = `Classes: ${labels.join(", ")}.`;
}

// File -> model input: decode (EXIF orientation applied, no colour management, as Pillow does),
// RGBA over white, Pillow's BILINEAR to 32x32. Returns a (32*32*3) Uint8Array, RGB, HWC.
async function toModelInput(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image",
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
  } catch {
    throw new Error("not a readable image");
  }
  if (bitmap.width * bitmap.height > maxPixels) {
    throw new Error(`refused, ${bitmap.width}x${bitmap.height} is over the ${maxPixels / 1e6} MP limit`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { colorSpace: "srgb" });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height, { colorSpace: "srgb" });
  bitmap.close();
  return resizeBilinear(toRGB({ width: rgba.width, height: rgba.height, data: rgba.data }), SIZE).data;
}

async function browserRuntime() {
  if (session) return session;
  try {
    ort = await import("/ort/ort.wasm.min.mjs");
  } catch {
    throw new Error(
      "the in-browser runtime is not installed on this server: run `npm install --ignore-scripts` " +
        "in the web/ folder of the cifar-pack checkout, or use server mode",
    );
  }
  ort.env.wasm.wasmPaths = `${location.origin}/ort/`; // absolute: else resolved against the module's folder
  ort.env.wasm.numThreads = 1; // no SharedArrayBuffer, so no cross-origin isolation needed
  const model = await (await fetchOk("/model.onnx")).arrayBuffer();
  session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  return session;
}

function topK(probabilities, k) {
  return Array.from(probabilities, (p, index) => ({ index, probability: p, label: labels[index] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}

async function classify(file, mode) {
  const pixels = await toModelInput(file);
  if (mode === "browser") {
    const runtime = await browserRuntime();
    const started = performance.now();
    const output = await runtime.run({ images: new ort.Tensor("uint8", pixels, [1, SIZE, SIZE, 3]) });
    const ms = performance.now() - started;
    return { pixels, top: topK(output.probabilities.data, TOP_K), ms, what: "model in this browser" };
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const started = performance.now();
  const items = await (await fetchOk(`/predict?top_k=${TOP_K}`, { method: "POST", body: form })).json();
  const ms = performance.now() - started;
  if (items[0].error) throw new Error(items[0].error);
  return { pixels, top: items[0].top_k, ms, what: "server round trip" };
}

function thumbnail(pixels) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIZE;
  const image = new ImageData(SIZE, SIZE);
  for (let i = 0, j = 0; i < pixels.length; i += 3, j += 4) {
    image.data.set([pixels[i], pixels[i + 1], pixels[i + 2], 255], j);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "the 32x32 input the model saw");
  return canvas;
}

function render(file, mode, result, error) {
  const item = document.createElement("li");
  item.dataset.filename = file.name;
  item.dataset.mode = mode;
  const name = Object.assign(document.createElement("div"), { className: "name", textContent: file.name });
  if (error) {
    item.setAttribute("data-testid", "result-error");
    const box = document.createElement("div");
    box.append(name, Object.assign(document.createElement("div"), { className: "error", textContent: error.message }));
    item.append(document.createElement("span"), box);
  } else {
    const best = result.top[0];
    item.setAttribute("data-testid", "result");
    item.dataset.label = best.label;
    item.dataset.probability = String(best.probability);
    item.dataset.ms = result.ms.toFixed(2); // what the meta line says, for benchmarks/web_page.py
    const box = document.createElement("div");
    box.append(name);
    for (const t of result.top) {
      const row = document.createElement("div");
      row.className = "row";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${Math.max(1, Math.round(100 * t.probability))}%`;
      const pct = `${(100 * t.probability).toFixed(1)}%`;
      row.append(Object.assign(document.createElement("span"), { textContent: t.label }), bar,
        Object.assign(document.createElement("span"), { textContent: pct }));
      box.append(row);
    }
    const meta = `${mode === "browser" ? "in this browser" : "on the server"}: ${result.ms.toFixed(1)} ms (${result.what})`;
    box.append(Object.assign(document.createElement("div"), { className: "meta", textContent: meta }));
    item.append(thumbnail(result.pixels), box);
  }
  $("results").prepend(item);
}

async function handle(files) {
  const mode = $("mode").value;
  $("status").textContent = `Classifying ${files.length} image(s) ${mode === "browser" ? "in this browser" : "on the server"}...`;
  try {
    if (!labels) await loadLabels();
  } catch (error) {
    $("status").textContent = error.message;
    return;
  }
  for (const file of files) {
    try {
      render(file, mode, await classify(file, mode), null);
    } catch (error) {
      render(file, mode, null, error);
    }
  }
  $("status").textContent = `Done: ${files.length} image(s).`;
}

$("controls").addEventListener("submit", (event) => event.preventDefault());
$("files").addEventListener("change", (event) => {
  const files = [...event.target.files];
  event.target.value = ""; // so that choosing the same files again (say, in the other mode) runs again
  handle(files);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  handle([...event.dataTransfer.files]);
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") $("files").click();
});
$("key-save").addEventListener("click", () => {
  sessionStorage.setItem("cifar-pack-key", $("api-key").value);
  $("key-box").hidden = true;
  labels = null;
  session = null;
  $("status").textContent = "Key saved for this tab. Choose the images again.";
});
loadLabels().catch((error) => { $("status").textContent = error.message; });
