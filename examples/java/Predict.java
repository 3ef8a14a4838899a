// Classify images with a cifar-pack ONNX model from Java 17: onnxruntime's Java package (Maven
// Central) for the model, javax.imageio for PNG and JPEG, and a port of Pillow's BILINEAR resize.
//
//   java -cp "build/classes:build/lib/*" Predict MODEL.onnx IMAGE...     (examples/java/run does it)
//
// Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
// significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
// Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;

public final class Predict {
  static final int SIZE = 32;
  static final int BATCH = 256;
  static final int PRECISION_BITS = 32 - 8 - 2;

  public static void main(String[] args) throws OrtException {
    if (args.length < 2) {
      System.err.println("usage: Predict MODEL.onnx IMAGE...");
      System.exit(2);
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    int failed = 0;
    try (OrtSession session = env.createSession(args[0], new OrtSession.SessionOptions())) {
      String json = session.getMetadata().getCustomMetadata().get("class_names");
      if (json == null) {
        System.err.println("error: " + args[0] + ": no class_names in its metadata");
        System.exit(2);
      }
      List<String> labels = parseLabels(json);
      List<String> paths = new ArrayList<>();
      ByteBuffer pixels = ByteBuffer.allocateDirect(BATCH * SIZE * SIZE * 3);
      for (int i = 1; i < args.length; i++) {
        try {
          pixels.put(load(args[i]));
          paths.add(args[i]);
        } catch (IOException e) {
          System.err.println(args[i] + "\terror: " + e.getMessage());
          failed = 1;
        }
        if (paths.size() == BATCH || (i == args.length - 1 && !paths.isEmpty())) {
          classify(env, session, pixels, paths, labels);
          paths.clear();
          pixels.clear();
        }
      }
    }
    System.exit(failed);
  }

  /** Runs the batch in {@code pixels} ({@code paths.size()} images) and prints one line each. */
  static void classify(OrtEnvironment env, OrtSession session, ByteBuffer pixels, List<String> paths,
      List<String> labels) throws OrtException {
    pixels.flip();
    long[] shape = {paths.size(), SIZE, SIZE, 3};
    try (OnnxTensor input = OnnxTensor.createTensor(env, pixels, shape, OnnxJavaType.UINT8);
        OrtSession.Result result = session.run(Map.of("images", input))) {
      float[][] probs = (float[][]) result.get(0).getValue();
      StringBuilder out = new StringBuilder();
      for (int i = 0; i < probs.length; i++) {
        int best = 0;
        for (int c = 1; c < probs[i].length; c++) if (probs[i][c] > probs[i][best]) best = c;
        out.append(paths.get(i)).append('\t').append(labels.get(best)).append('\t');
        for (int c = 0; c < probs[i].length; c++) {
          out.append(c == 0 ? "" : " ").append(String.format("%.9g", probs[i][c]));
        }
        out.append('\n');
      }
      System.out.print(out);
    }
  }

  /** metadata_props["class_names"]: a JSON list of plain strings, as cifar-pack writes it. */
  static List<String> parseLabels(String json) {
    List<String> labels = new ArrayList<>();
    for (int i = json.indexOf('"'); i >= 0; i = json.indexOf('"', i + 1)) {
      StringBuilder label = new StringBuilder();
      for (i++; i < json.length() && json.charAt(i) != '"'; i++) {
        label.append(json.charAt(i) == '\\' ? json.charAt(++i) : json.charAt(i));
      }
      labels.add(label.toString());
    }
    return labels;
  }

  /** A PNG or JPEG file -> 32x32x3 RGB bytes: alpha over white, then Pillow's BILINEAR resize. */
  static byte[] load(String path) throws IOException {
    File file = new File(path);
    if (!file.isFile()) throw new IOException("no such file");
    BufferedImage image = ImageIO.read(file);
    if (image == null) throw new IOException("not a readable image");
    int w = image.getWidth(), h = image.getHeight();
    if ((long) w * h > 50_000_000L) throw new IOException("larger than 50 megapixels");
    int[] argb = image.getRGB(0, 0, w, h, null, 0, w);
    int[] rgb = new int[w * h * 3];
    for (int i = 0; i < w * h; i++) {
      int a = argb[i] >>> 24;
      for (int c = 0; c < 3; c++) {
        int v = (argb[i] >> (16 - 8 * c)) & 0xff;
        rgb[i * 3 + c] = a == 255 ? v : (int) Math.round((v * a + 255.0 * (255 - a)) / 255.0);
      }
    }
    int[] out = resize(rgb, w, h);
    byte[] bytes = new byte[out.length];
    for (int i = 0; i < out.length; i++) bytes[i] = (byte) out[i];
    return bytes;
  }

  // Pillow's resample (libImaging/Resample.c), as examples/c/image.c: horizontal pass then
  // vertical (vertical first when the height shrinks more than twice the width), 8-bit rounding.
  static int[] resize(int[] rgb, int w, int h) {
    int shrinkH = h - SIZE;
    boolean verticalFirst = shrinkH > 0 && shrinkH > (w - SIZE) * 2;
    for (int pass = 0; pass < 2; pass++) {
      boolean horizontal = verticalFirst ? pass == 1 : pass == 0;
      if ((horizontal ? w : h) == SIZE) continue;
      rgb = resampleAxis(rgb, w, h, horizontal);
      if (horizontal) w = SIZE; else h = SIZE;
    }
    return rgb;
  }

  static int[] resampleAxis(int[] src, int w, int h, boolean horizontal) {
    int inSize = horizontal ? w : h;
    double scale = (double) inSize / SIZE, filterscale = Math.max(scale, 1.0), support = filterscale;
    int ksize = (int) Math.ceil(support) * 2 + 1;
    int[] kk = new int[SIZE * ksize];
    int[] bounds = new int[SIZE * 2];
    for (int xx = 0; xx < SIZE; xx++) {
      double center = (xx + 0.5) * scale, ww = 0.0;
      int xmin = Math.max((int) (center - support + 0.5), 0);
      int xmax = Math.min((int) (center + support + 0.5), inSize) - xmin;
      double[] k = new double[xmax];
      for (int x = 0; x < xmax; x++) {
        double t = Math.abs((x + xmin - center + 0.5) / filterscale);
        k[x] = t < 1.0 ? 1.0 - t : 0.0;
        ww += k[x];
      }
      for (int x = 0; x < xmax; x++) {
        double v = ww != 0.0 ? k[x] / ww : k[x];
        kk[xx * ksize + x] = (int) (v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    int ow = horizontal ? SIZE : w, oh = horizontal ? h : SIZE;
    int[] out = new int[ow * oh * 3];
    for (int y = 0; y < oh; y++) {
      for (int x = 0; x < ow; x++) {
        int o = horizontal ? x : y, min = bounds[o * 2], n = bounds[o * 2 + 1];
        for (int c = 0; c < 3; c++) {
          long ss = 1L << (PRECISION_BITS - 1);
          for (int i = 0; i < n; i++) {
            int p = horizontal ? (y * w + min + i) * 3 : ((min + i) * w + x) * 3;
            ss += (long) src[p + c] * kk[o * ksize + i];
          }
          long v = ss >> PRECISION_BITS;
          out[(y * ow + x) * 3 + c] = (int) Math.max(0, Math.min(255, v));
        }
      }
    }
    return out;
  }
}
