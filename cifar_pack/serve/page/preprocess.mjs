// The model's preprocessing in JavaScript, shared by the Node.js example (examples/node) and the
// web page (cifar_pack/serve/page): RGBA over white, then Pillow's BILINEAR resize to 32x32, ported line
// by line so that the bytes the model sees equal Python's (cifar_pack/runtime/images.py, Pillow >= 13). No imports: it
// runs in Node and in browsers alike.

export const SIZE = 32;
const BACKGROUND = 255; // alpha is composited over white, as the Python predictor does

// RGBA -> RGB over a white background: out = (c * a + 255 * (255 - a)) / 255, rounded.
export function toRGB({ width, height, data }) {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    const a = data[i + 3];
    for (let c = 0; c < 3; c++) {
      rgb[j + c] = a === 255 ? data[i + c] : Math.round((data[i + c] * a + BACKGROUND * (255 - a)) / 255);
    }
  }
  return { width, height, data: rgb };
}

// ---------------------------------------------------------------------------------------------
// Resize: a port of Pillow's libImaging/Resample.c for 8-bit images with the BILINEAR filter
// (triangle of support 1, widened by the scale factor when shrinking). Horizontal pass first,
// then vertical, each rounding to uint8 with 22-bit fixed-point coefficients, as Pillow does.

const PRECISION_BITS = 32 - 8 - 2;

function precomputeCoeffs(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Float64Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1.0 ? 1.0 - t : 0.0;
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0.0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  // normalize_coeffs_8bpc: doubles -> fixed point, rounding half away from zero
  const ik = new Int32Array(kk.length);
  for (let i = 0; i < kk.length; i++) {
    ik[i] = kk[i] < 0 ? Math.trunc(-0.5 + kk[i] * (1 << PRECISION_BITS)) : Math.trunc(0.5 + kk[i] * (1 << PRECISION_BITS));
  }
  return { ksize, kk: ik, bounds };
}

function clip8(v) {
  const x = Math.floor(v / (1 << PRECISION_BITS)); // arithmetic shift; sums can exceed 2^31 in JS
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

function resampleAxis(src, width, height, outSize, horizontal) {
  const inSize = horizontal ? width : height;
  const { ksize, kk, bounds } = precomputeCoeffs(inSize, outSize);
  const outW = horizontal ? outSize : width;
  const outH = horizontal ? height : outSize;
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      const min = bounds[o * 2];
      const n = bounds[o * 2 + 1];
      for (let c = 0; c < 3; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let i = 0; i < n; i++) {
          const p = horizontal ? (y * width + (min + i)) * 3 : ((min + i) * width + x) * 3;
          ss += src[p + c] * kk[o * ksize + i];
        }
        out[(y * outW + x) * 3 + c] = clip8(ss);
      }
    }
  }
  return { width: outW, height: outH, data: out };
}

export function resizeBilinear(img, size = SIZE) {
  // Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the
  // width (ImagingResampleInner in Resample.c); each pass rounds to 8 bits, so the order is kept.
  const shrinkH = img.height - size;
  const verticalFirst = shrinkH > 0 && shrinkH > (img.width - size) * 2;
  let cur = img;
  for (const horizontal of verticalFirst ? [false, true] : [true, false]) {
    const current = horizontal ? cur.width : cur.height;
    if (current !== size) cur = resampleAxis(cur.data, cur.width, cur.height, size, horizontal);
  }
  return cur;
}
