// Classify images with a cifar-pack ONNX model from Java 17: onnxruntime's Java package (Maven
// Central, with its own native library) for the model, ModelInput.java for the pixels.
//
//   java -cp "target/classes:target/lib/*" Predict MODEL.onnx IMAGE...    (examples/java/run does it)
//
// Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
// significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
// Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

public final class Predict {
  static final int SIZE = ModelInput.SIZE;
  static final int BATCH = 256;
  // onnxruntime 1.29's Linux telemetry, set up with the first environment, runs a std::regex over
  // /proc/self/cmdline whose recursion grows with the command line: with a 5,000-character one
  // (40,000 under -Xss8m) it overflows the calling thread's stack and the JVM dies with SIGSEGV.
  // A real app's classpath is that long. All onnxruntime work therefore runs on a thread with
  // this much stack (reserved address space, touched only as deep as it goes): enough for the
  // longest command line Linux allows. ORT_DISABLE_TELEMETRY=1 in the environment also avoids it.
  static final long ONNXRUNTIME_STACK_BYTES = 1L << 30;

  public static void main(String[] args) throws InterruptedException {
    int[] status = {2};
    Thread worker = new Thread(null, () -> status[0] = run(args, System.out, System.err), "onnxruntime",
        ONNXRUNTIME_STACK_BYTES);
    worker.start();
    worker.join();
    System.exit(status[0]);
  }

  /** 0: every image answered; 1: some file could not be read (said on err); 2: the model could not be used. */
  static int run(String[] args, PrintStream out, PrintStream err) {
    if (args.length < 2) {
      err.println("usage: Predict MODEL.onnx IMAGE...");
      return 2;
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    int failed = 0;
    try (OrtSession session = env.createSession(args[0], new OrtSession.SessionOptions())) {
      Map<String, String> meta = session.getMetadata().getCustomMetadata();
      String names = meta.get("class_names");
      if (names == null) {
        err.println("error: " + args[0] + ": no class_names in its metadata (not a cifar-pack export?)");
        return 2;
      }
      List<String> labels = parseLabels(names);
      long maxPixels = maxPixels(args[0], meta.get("input"));
      List<String> paths = new ArrayList<>();
      ByteBuffer pixels = ByteBuffer.allocateDirect(BATCH * SIZE * SIZE * 3);
      for (int i = 1; i < args.length; i++) {
        try {
          pixels.put(ModelInput.load(Path.of(args[i]), maxPixels));
          paths.add(args[i]);
        } catch (IOException | java.nio.file.InvalidPathException e) {
          err.println(args[i] + "\terror: " + e.getMessage());
          failed = 1;
        }
        if (paths.size() == BATCH || (i == args.length - 1 && !paths.isEmpty())) {
          classify(env, session, pixels, paths, labels, out);
          paths.clear();
          pixels.clear();
        }
      }
    } catch (OrtException | IllegalArgumentException e) {
      err.println("error: " + args[0] + ": " + e.getMessage());
      return 2;
    }
    out.flush();
    return failed;
  }

  /** Runs the batch in {@code pixels} ({@code paths.size()} images) and prints one line each. */
  static void classify(OrtEnvironment env, OrtSession session, ByteBuffer pixels, List<String> paths,
      List<String> labels, PrintStream out) throws OrtException {
    pixels.flip();
    long[] shape = {paths.size(), SIZE, SIZE, 3};
    try (OnnxTensor input = OnnxTensor.createTensor(env, pixels, shape, OnnxJavaType.UINT8);
        OrtSession.Result result = session.run(Map.of("images", input))) {
      float[][] probs = (float[][]) result.get(0).getValue();
      StringBuilder text = new StringBuilder();
      for (int i = 0; i < probs.length; i++) {
        int best = 0;
        for (int c = 1; c < probs[i].length; c++) if (probs[i][c] > probs[i][best]) best = c;
        text.append(paths.get(i)).append('\t').append(labels.get(best)).append('\t');
        for (int c = 0; c < probs[i].length; c++) {
          text.append(c == 0 ? "" : " ").append(String.format("%.9g", probs[i][c]));
        }
        text.append('\n');
      }
      out.print(text);
    }
  }

  /** The pixel cap: CIFAR_PACK_MAX_PIXELS if set, else the max_pixels of metadata_props["input"]. */
  static long maxPixels(String model, String inputJson) {
    String env = System.getenv("CIFAR_PACK_MAX_PIXELS");
    if (env != null && !env.isEmpty()) {
      try {
        long v = Long.parseLong(env);
        if (v >= 1) return v;
      } catch (NumberFormatException e) {
        // said below
      }
      throw new IllegalArgumentException("CIFAR_PACK_MAX_PIXELS must be a whole number of at least 1");
    }
    int key = inputJson == null ? -1 : inputJson.indexOf("\"max_pixels\"");
    if (key < 0) {
      throw new IllegalArgumentException("no max_pixels in its input metadata (exported by an older cifar-pack): "
          + "set CIFAR_PACK_MAX_PIXELS, or re-export it with cifar-pack export");
    }
    int at = inputJson.indexOf(':', key) + 1;
    while (at < inputJson.length() && inputJson.charAt(at) == ' ') at++;
    int end = at;
    while (end < inputJson.length() && Character.isDigit(inputJson.charAt(end))) end++;
    return Long.parseLong(inputJson.substring(at, end));
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
}
