// The cifar-pack model's input from an image file, exactly as the Python predictor (Pillow) makes it:
// uint8 (32, 32, 3) RGB, HWC. Copy this one file into your app; it needs only the JDK.
//
//   byte[] pixels = ModelInput.load(Path.of("photo.jpg"), maxPixels);   // IOException: why, one line
//
// The rules (docs/embedding.md, "The contract"), each the same as examples/c/image.c:
//   1. the format from the file's first bytes (PNG or JPEG), never from its name;
//   2. the size from the header, refused above maxPixels before any pixel is decoded;
//   3. as strict as Pillow: truncated data, a bad CRC before the image data, a broken stream refused;
//      PNG decoded here (java.util.zip): every colour type and bit depth unpacked as Pillow does,
//      16-bit grey scaled by 65535/255, other 16-bit samples their high byte, tRNS for palettes only,
//      gAMA/iCCP ignored (javax.imageio's getRGB would apply both); JPEG by javax.imageio's raster
//      (libjpeg's integer IDCT and fancy upsampling, as Pillow's libjpeg-turbo), CMYK and YCCK
//      converted with Pillow's formula;
//   4. EXIF orientation (JPEG APP1, PNG eXIf) applied;
//   5. alpha composited over white with Pillow's integer arithmetic;
//   6. Pillow's BILINEAR resize to 32x32 (a port of libImaging/Resample.c).

import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;

public final class ModelInput {
  public static final int SIZE = 32;
  private static final int PRECISION_BITS = 32 - 8 - 2;

  private ModelInput() {}

  /** An image file -> (32, 32, 3) RGB bytes; IOException whose message says what is wrong with it. */
  public static byte[] load(Path path, long maxPixels) throws IOException {
    if (Files.isDirectory(path)) throw new IOException("is a directory, not an image");
    if (Files.exists(path) && !Files.isRegularFile(path)) {
      throw new IOException("not a regular file (a FIFO, device or socket)"); // a FIFO would block the read
    }
    byte[] data;
    try {
      data = Files.readAllBytes(path);
    } catch (NoSuchFileException e) {
      throw new IOException("cannot open it (no such file)");
    } catch (IOException | OutOfMemoryError e) {
      throw new IOException("cannot read it (" + e.getMessage() + ")");
    }
    Canvas canvas;
    if (data.length == 0) throw new IOException("not a readable image (empty file)");
    if (startsWith(data, PNG_SIGNATURE)) canvas = Png.decode(data, maxPixels);
    else if (data.length >= 3 && (data[0] & 0xff) == 0xff && (data[1] & 0xff) == 0xd8 && (data[2] & 0xff) == 0xff) {
      canvas = Jpeg.decode(data, maxPixels);
    } else throw new IOException(otherFormat(data));
    return resize(canvas.rgb, canvas.width, canvas.height);
  }

  /** Why a file that is neither PNG nor JPEG is refused: the formats Pillow also reads are named. */
  static String otherFormat(byte[] d) {
    String only = ": this decoder reads PNG and JPEG only (convert it first)";
    String head = new String(d, 0, Math.min(d.length, 4), java.nio.charset.StandardCharsets.ISO_8859_1);
    if (head.equals("GIF8")) return "a GIF image" + only;
    if (head.startsWith("BM")) return "a BMP image" + only;
    if (head.equals("II*\0") || head.equals("MM\0*")) return "a TIFF image" + only;
    if (head.equals("RIFF")) return "a RIFF (WebP?) file" + only;
    return "not a readable image (neither PNG nor JPEG by its first bytes)";
  }

  static void checkCap(long w, long h, long maxPixels) throws IOException {
    if (w * h > maxPixels) {
      throw new IOException(String.format("refused: %dx%d is %s megapixels, over the %s MP limit "
          + "(CIFAR_PACK_MAX_PIXELS raises it)", w, h, megapixels(w * h), megapixels(maxPixels)));
    }
  }

  /** Whole megapixels from 10 up, one decimal below (a 100,000-pixel cap is "0.1"), as image.c. */
  static String megapixels(long pixels) {
    double mp = pixels / 1e6;
    return String.format(java.util.Locale.ROOT, mp < 10 ? "%.1f" : "%.0f", mp);
  }

  private static boolean startsWith(byte[] data, byte[] prefix) {
    if (data.length < prefix.length) return false;
    for (int i = 0; i < prefix.length; i++) if (data[i] != prefix[i]) return false;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  /** The decoded image, 8-bit RGB, each pixel written at its EXIF-oriented place. */
  static final class Canvas {
    final int srcW, srcH, width, height, orientation;
    final byte[] rgb; // (height, width, 3)

    Canvas(int w, int h, int orientation) throws IOException {
      this.srcW = w;
      this.srcH = h;
      this.orientation = orientation >= 2 && orientation <= 8 ? orientation : 1;
      boolean swap = this.orientation >= 5; // 5-8 turn the image a quarter: width and height swap
      this.width = swap ? h : w;
      this.height = swap ? w : h;
      if ((long) w * h * 3 > Integer.MAX_VALUE - 8) throw new IOException("too large for one Java array");
      this.rgb = new byte[w * h * 3];
    }

    /** Source pixel (x, y), alpha a (-1: opaque), placed as Pillow's ImageOps.exif_transpose moves it. */
    void put(int x, int y, int r, int g, int b, int a) {
      int w = srcW, h = srcH, dx = x, dy = y;
      switch (orientation) {
        case 2: dx = w - 1 - x; break; // FLIP_LEFT_RIGHT
        case 3: dx = w - 1 - x; dy = h - 1 - y; break; // ROTATE_180
        case 4: dy = h - 1 - y; break; // FLIP_TOP_BOTTOM
        case 5: dx = y; dy = x; break; // TRANSPOSE
        case 6: dx = h - 1 - y; dy = x; break; // ROTATE_270
        case 7: dx = h - 1 - y; dy = w - 1 - x; break; // TRANSVERSE
        case 8: dx = y; dy = w - 1 - x; break; // ROTATE_90
        default: break;
      }
      int p = (dy * width + dx) * 3;
      rgb[p] = (byte) (a < 0 ? r : overWhite(r, a));
      rgb[p + 1] = (byte) (a < 0 ? g : overWhite(g, a));
      rgb[p + 2] = (byte) (a < 0 ? b : overWhite(b, a));
    }
  }

  /** Alpha over opaque white, Pillow's AlphaComposite.c (7 precision bits; white opaque reduces its
   * coefficients to a * 128 and (255 - a) * 128). */
  static int overWhite(int v, int a) {
    if (a == 0) return 255;
    long tmp = (long) v * a * 128 + 255L * (255 - a) * 128 + (0x80 << 7);
    return (int) ((((tmp >> 8) + tmp) >> 8) >> 7);
  }

  /** EXIF orientation (tag 0x0112 of IFD0) from TIFF-structured bytes at data[off, off + n); 1 if none. */
  static int exifOrientation(byte[] data, int off, int n) {
    if (n < 8) return 1;
    boolean le = data[off] == 'I' && data[off + 1] == 'I';
    if (!le && !(data[off] == 'M' && data[off + 1] == 'M')) return 1;
    long ifd = u32(data, off + 4, le);
    if (ifd > n - 2) return 1;
    int entries = u16(data, off + (int) ifd, le);
    for (int i = 0; i < entries; i++) {
      int e = off + (int) ifd + 2 + i * 12;
      if (e + 12 > off + n) break;
      if (u16(data, e, le) != 0x0112) continue;
      int type = u16(data, e + 2, le); // SHORT as the standard says; some writers use LONG
      return type == 3 ? u16(data, e + 8, le) : type == 4 ? (int) u32(data, e + 8, le) : 1;
    }
    return 1;
  }

  private static int u16(byte[] d, int i, boolean le) {
    int a = d[i] & 0xff, b = d[i + 1] & 0xff;
    return le ? a | b << 8 : a << 8 | b;
  }

  private static long u32(byte[] d, int i, boolean le) {
    long a = u16(d, i, le), b = u16(d, i + 2, le);
    return le ? a | b << 16 : a << 16 | b;
  }

  // ---------------------------------------------------------------------------------------------
  private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

  /** PNG, decoded here rather than by javax.imageio, which checks no CRC and applies gamma on getRGB. */
  static final class Png {
    int width, height, depth, type, interlace, channels, nPlte, nTrns = -1, orientation = 1;
    byte[] plte = new byte[0], trns = new byte[0];
    final List<InputStream> idat = new ArrayList<>();

    static Canvas decode(byte[] data, long maxPixels) throws IOException {
      Png png = new Png();
      png.readChunks(data);
      checkCap(png.width, png.height, maxPixels);
      Canvas canvas = new Canvas(png.width, png.height, png.orientation);
      png.readImage(canvas);
      return canvas;
    }

    /** Every chunk up to the image data, CRC-checked as Pillow does (none from IDAT on, where it stops). */
    void readChunks(byte[] d) throws IOException {
      int at = 8;
      boolean sawIdat = false;
      while (true) {
        if (at + 8 > d.length) {
          if (sawIdat) return; // Pillow reads nothing after the image data: no IEND is fine
          throw new IOException("not a readable PNG (truncated: the file ends before the image does)");
        }
        long length = u32(d, at, false);
        String kind = new String(d, at + 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1);
        int start = at + 8;
        long end = start + length;
        if (kind.equals("IDAT")) {
          sawIdat = true;
          idat.add(new ByteArrayInputStream(d, start, (int) Math.min(length, d.length - start)));
        } else if (sawIdat) {
          return;
        } else {
          if (end + 4 > d.length) throw new IOException("not a readable PNG (truncated: the file ends before the image does)");
          CRC32 crc = new CRC32();
          crc.update(d, at + 4, (int) length + 4);
          if (crc.getValue() != u32(d, (int) end, false)) throw new IOException("not a readable PNG (" + kind + ": CRC error)");
          chunk(kind, d, start, (int) length);
        }
        if (at == 8 && !kind.equals("IHDR")) throw new IOException("not a readable PNG (IHDR is not the first chunk)");
        at = (int) Math.min(end + 4, Integer.MAX_VALUE);
      }
    }

    void chunk(String kind, byte[] d, int at, int n) throws IOException {
      switch (kind) {
        case "IHDR":
          width = (int) u32(d, at, false);
          height = (int) u32(d, at + 4, false);
          depth = d[at + 8];
          type = d[at + 9];
          interlace = d[at + 12];
          channels = type == 0 || type == 3 ? 1 : type == 2 ? 3 : type == 4 ? 2 : type == 6 ? 4 : 0;
          boolean depthOk = type == 0 ? depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16
              : type == 3 ? depth == 1 || depth == 2 || depth == 4 || depth == 8 : depth == 8 || depth == 16;
          if (channels == 0 || !depthOk || width <= 0 || height <= 0 || interlace > 1) {
            throw new IOException("not a readable PNG (unsupported IHDR: colour type " + type + ", bit depth " + depth + ")");
          }
          break;
        case "PLTE":
          plte = java.util.Arrays.copyOfRange(d, at, at + n);
          nPlte = n / 3;
          break;
        case "tRNS":
          trns = java.util.Arrays.copyOfRange(d, at, at + n);
          nTrns = n;
          break;
        case "eXIf":
          orientation = exifOrientation(d, at, n);
          break;
        default:
          break;
      }
    }

    void readImage(Canvas canvas) throws IOException {
      Inflater inflater = new Inflater();
      try (InputStream raw = new SequenceInputStream(Collections.enumeration(idat))) {
        int bpp = Math.max(1, channels * depth / 8); // bytes per complete pixel, for the filters
        if (interlace == 0) {
          rows(inflater, raw, bpp, width, height, (x, y, row) -> pixel(canvas, x, y, row));
          return;
        }
        // Adam7: seven reduced images; pass p's pixel (i, j) is at (x0 + i * dx, y0 + j * dy).
        int[][] adam7 = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
        for (int[] p : adam7) {
          int pw = (width - p[0] + p[2] - 1) / p[2], ph = (height - p[1] + p[3] - 1) / p[3];
          if (pw <= 0 || ph <= 0) continue;
          rows(inflater, raw, bpp, pw, ph, (i, j, row) -> pixel(canvas, p[0] + i * p[2], p[1] + j * p[3], row, i));
        }
      } finally {
        inflater.end();
      }
    }

    interface PixelSink {
      void accept(int x, int y, byte[] row) throws IOException;
    }

    /** Inflates and unfilters h rows of w pixels, calling sink for every pixel of each row. */
    void rows(Inflater inflater, InputStream raw, int bpp, int w, int h, PixelSink sink) throws IOException {
      int stride = (int) (((long) w * channels * depth + 7) / 8);
      byte[] prev = new byte[stride], row = new byte[stride], line = new byte[stride + 1];
      byte[] input = new byte[65536];
      for (int y = 0; y < h; y++) {
        int got = 0;
        while (got < line.length) {
          try {
            int n = inflater.inflate(line, got, line.length - got);
            got += n;
            if (n == 0) {
              if (inflater.finished() || inflater.needsDictionary()) {
                throw new IOException("not a readable PNG (truncated: the image data ends early)");
              }
              int read = raw.read(input);
              if (read < 0) throw new IOException("not a readable PNG (truncated: the file ends before the image does)");
              inflater.setInput(input, 0, read);
            }
          } catch (DataFormatException e) {
            throw new IOException("not a readable PNG (IDAT: " + e.getMessage() + ")");
          }
        }
        unfilter(line[0], line, row, prev, bpp);
        for (int x = 0; x < w; x++) sink.accept(x, y, row);
        byte[] t = prev;
        prev = row;
        row = t;
      }
    }

    static void unfilter(byte filter, byte[] line, byte[] out, byte[] prev, int bpp) throws IOException {
      for (int i = 0; i < out.length; i++) {
        int x = line[i + 1] & 0xff, a = i >= bpp ? out[i - bpp] & 0xff : 0, b = prev[i] & 0xff;
        int c = i >= bpp ? prev[i - bpp] & 0xff : 0;
        switch (filter) {
          case 0: break;
          case 1: x += a; break;
          case 2: x += b; break;
          case 3: x += (a + b) >>> 1; break;
          case 4: {
            int p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
            x += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            break;
          }
          default: throw new IOException("not a readable PNG (unknown filter type " + filter + ")");
        }
        out[i] = (byte) x;
      }
    }

    private int sample(byte[] row, int x, int c) {
      if (depth < 8) {
        int bit = (x * channels + c) * depth;
        return ((row[bit >> 3] & 0xff) >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
      }
      int i = (x * channels + c) * (depth / 8);
      return depth == 16 ? (row[i] & 0xff) << 8 | (row[i + 1] & 0xff) : row[i] & 0xff;
    }

    private void pixel(Canvas canvas, int x, int y, byte[] row) {
      pixel(canvas, x, y, row, x);
    }

    /** Pixel i of the decoded row -> the canvas at (x, y), unpacked as Pillow's modes do. */
    private void pixel(Canvas canvas, int x, int y, byte[] row, int i) {
      int[] s = new int[channels];
      for (int c = 0; c < channels; c++) s[c] = sample(row, i, c);
      if (type == 3) { // palette: an index past the palette is black; tRNS gives alpha
        int k = s[0], r = 0, g = 0, b = 0;
        if (k < nPlte) {
          r = plte[k * 3] & 0xff;
          g = plte[k * 3 + 1] & 0xff;
          b = plte[k * 3 + 2] & 0xff;
        }
        canvas.put(x, y, r, g, b, nTrns < 0 ? -1 : k < nTrns ? trns[k] & 0xff : 255);
      } else if (type == 0) { // "1", "L;2", "L;4" scaled to 0..255; "I;16" by (v + 128) / 257
        int v = depth == 16 ? (s[0] + 128) / 257 : depth == 8 ? s[0] : s[0] * 255 / ((1 << depth) - 1);
        canvas.put(x, y, v, v, v, -1);
      } else { // "RGB;16B", "RGBA;16B", "LA;16B": the high byte
        if (depth == 16) for (int c = 0; c < channels; c++) s[c] >>= 8;
        if (type == 2) canvas.put(x, y, s[0], s[1], s[2], -1);
        else if (type == 4) canvas.put(x, y, s[0], s[0], s[0], s[1]);
        else canvas.put(x, y, s[0], s[1], s[2], s[3]);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  /** JPEG through javax.imageio's reader (IJG libjpeg inside the JDK), reading its raster. */
  static final class Jpeg {
    int width, height, components, precision, orientation = 1, adobeTransform = -1;

    static Canvas decode(byte[] data, long maxPixels) throws IOException {
      Jpeg jpeg = new Jpeg();
      jpeg.readMarkers(data);
      checkCap(jpeg.width, jpeg.height, maxPixels);
      if (jpeg.precision != 8) throw new IOException("not a readable JPEG (cannot handle " + jpeg.precision + "-bit layers)");
      if (jpeg.components != 1 && jpeg.components != 3 && jpeg.components != 4) {
        throw new IOException("not a readable JPEG (cannot handle " + jpeg.components + "-layer images)");
      }
      Raster raster = jpeg.pixels(data);
      Canvas canvas = new Canvas(raster.getWidth(), raster.getHeight(), jpeg.orientation);
      int[] px = new int[raster.getNumBands()];
      for (int y = 0; y < canvas.srcH; y++) {
        for (int x = 0; x < canvas.srcW; x++) {
          raster.getPixel(x, y, px);
          if (px.length == 1) canvas.put(x, y, px[0], px[0], px[0], -1);
          else if (px.length == 3) canvas.put(x, y, px[0], px[1], px[2], -1);
          else jpeg.putCmyk(canvas, x, y, px);
        }
      }
      return canvas;
    }

    /** The header up to the first scan: size, components and precision (SOFn), EXIF, Adobe transform. */
    void readMarkers(byte[] d) throws IOException {
      int at = 2;
      while (true) {
        while (at < d.length && (d[at] & 0xff) != 0xff) at++; // Pillow skips junk between markers
        while (at < d.length && (d[at] & 0xff) == 0xff) at++;
        if (at + 2 >= d.length) throw new IOException("not a readable JPEG (truncated: no image data before the end)");
        int marker = d[at] & 0xff;
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { // markers without a length
          at++;
          continue;
        }
        int length = u16(d, at + 1, false), body = at + 3;
        if (marker == 0xda) break; // start of scan: the header is complete
        if (body + length - 2 > d.length) throw new IOException("not a readable JPEG (truncated inside its header)");
        if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc && width == 0) {
          precision = d[body] & 0xff;
          height = u16(d, body + 1, false);
          width = u16(d, body + 3, false);
          components = d[body + 5] & 0xff;
        } else if (marker == 0xe1 && orientation == 1 && length > 8 && d[body] == 'E' && d[body + 1] == 'x'
            && d[body + 2] == 'i' && d[body + 3] == 'f' && d[body + 4] == 0 && d[body + 5] == 0) {
          orientation = exifOrientation(d, body + 6, length - 2 - 6); // the first Exif block, as Pillow
        } else if (marker == 0xee && length >= 14 && d[body] == 'A' && d[body + 1] == 'd') {
          adobeTransform = d[body + 11] & 0xff;
        }
        at = body + length - 2;
      }
      if (width == 0) throw new IOException("not a readable JPEG (no frame header before the image data)");
    }

    /** The decoded samples. 1 and 3 components: read(), whose raster is grey or RGB as libjpeg made
     * it (getRGB would add gamma and ICC conversion); 4: readRaster(), the stored samples. */
    Raster pixels(byte[] data) throws IOException {
      ImageReader reader = ImageIO.getImageReadersByFormatName("jpeg").next();
      List<String> warnings = new ArrayList<>();
      try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(data))) {
        reader.setInput(in);
        reader.addIIOReadWarningListener((source, warning) -> warnings.add(warning));
        Raster raster = components == 4 ? reader.readRaster(0, null) : reader.read(0).getRaster();
        // libjpeg invents the missing end of a cut file and only warns; Pillow refuses the file.
        for (String w : warnings) {
          if (w.contains("Missing EOI") || w.contains("Premature end")) {
            throw new IOException("truncated JPEG: the file ends before the image does");
          }
        }
        return raster;
      } catch (javax.imageio.IIOException e) {
        throw new IOException("not a readable JPEG (" + e.getMessage() + ")");
      } finally {
        reader.dispose();
      }
    }

    /** Stored CMYK (or YCCK, turned into CMYK by libjpeg's integer tables, jdcolor.c) -> Pillow's
     * "CMYK;I" (Adobe-inverted) -> cmyk2rgb: nk = 255 - k, out = nk - nk * c / 255 (Convert.c). */
    void putCmyk(Canvas canvas, int x, int y, int[] px) {
      int[] cmyk = px;
      if (adobeTransform == 2) {
        int yy = px[0], cb = px[1] - 128, cr = px[2] - 128;
        int r = yy + (int) ((FIX_1_40200 * cr + ONE_HALF) >> 16);
        int g = yy + (int) ((-FIX_0_34414 * cb + ONE_HALF - FIX_0_71414 * cr) >> 16);
        int b = yy + (int) ((FIX_1_77200 * cb + ONE_HALF) >> 16);
        cmyk = new int[] {clamp(255 - r), clamp(255 - g), clamp(255 - b), px[3]};
      }
      int nk = cmyk[3];
      int[] rgb = new int[3];
      for (int c = 0; c < 3; c++) {
        int t = (255 - cmyk[c]) * nk + 128;
        rgb[c] = clamp(nk - (((t >> 8) + t) >> 8));
      }
      canvas.put(x, y, rgb[0], rgb[1], rgb[2], -1);
    }

    private static final long ONE_HALF = 1L << 15, FIX_1_40200 = 91881, FIX_1_77200 = 116130;
    private static final long FIX_0_71414 = 46802, FIX_0_34414 = 22554;

    private static int clamp(int v) {
      return v < 0 ? 0 : Math.min(v, 255);
    }
  }

  // ---------------------------------------------------------------------------------------------
  /** Pillow's resample (libImaging/Resample.c), as examples/c/image.c: horizontal pass then vertical
   * (vertical first when the height shrinks more than twice the width), 8-bit rounding. */
  static byte[] resize(byte[] rgb, int w, int h) {
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

  static byte[] resampleAxis(byte[] src, int w, int h, boolean horizontal) {
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
        double t = Math.abs((x + xmin - center + 0.5) * (1.0 / filterscale));
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
    byte[] out = new byte[ow * oh * 3];
    for (int y = 0; y < oh; y++) {
      for (int x = 0; x < ow; x++) {
        int o = horizontal ? x : y, min = bounds[o * 2], n = bounds[o * 2 + 1];
        for (int c = 0; c < 3; c++) {
          long ss = 1L << (PRECISION_BITS - 1);
          for (int i = 0; i < n; i++) {
            int p = horizontal ? (y * w + min + i) * 3 : ((min + i) * w + x) * 3;
            ss += (long) (src[p + c] & 0xff) * kk[o * ksize + i];
          }
          long v = ss >> PRECISION_BITS;
          out[(y * ow + x) * 3 + c] = (byte) Math.max(0, Math.min(255, v));
        }
      }
    }
    return out;
  }
}
