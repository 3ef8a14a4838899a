/* See image.h for the rules. Every decision below is Pillow 13's; the comment names where. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* jpeglib.h needs size_t and FILE first (stdio.h above). */
#include <jerror.h>
#include <jpeglib.h>

#define PRECISION_BITS (32 - 8 - 2)

/* ------------------------------------------------------------------------------------------ */
/* Pillow's resample (Resample.c): triangle filter of support 1, widened by the scale factor when
 * shrinking; 22-bit fixed-point coefficients; one pass per axis, each rounding to 8 bits. */

static int coefficients(int in_size, int out_size, int **bounds_out, int32_t **kk_out) {
  double scale = (double)in_size / out_size, filterscale = scale > 1.0 ? scale : 1.0;
  double support = filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  double *kk = calloc((size_t)out_size * ksize, sizeof(double));
  int *bounds = malloc(sizeof(int) * 2 * out_size);
  int32_t *ik = malloc(sizeof(int32_t) * out_size * ksize);
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; x++) {
      double t = fabs((x + xmin - center + 0.5) * ss), w = t < 1.0 ? 1.0 - t : 0.0;
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; x++)
      if (ww != 0.0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  for (int i = 0; i < out_size * ksize; i++) /* round half away from zero, as Pillow */
    ik[i] = (int32_t)(kk[i] < 0 ? -0.5 + kk[i] * (1 << PRECISION_BITS) : 0.5 + kk[i] * (1 << PRECISION_BITS));
  free(kk);
  *bounds_out = bounds;
  *kk_out = ik;
  return ksize;
}

static uint8_t clip8(int64_t v) {
  int64_t x = v >> PRECISION_BITS;
  return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
}

/* One pass: resize along x (horizontal) or y to `out_size`; returns a new w' x h' RGB buffer. */
static uint8_t *resample_axis(const uint8_t *src, int w, int h, int out_size, int horizontal) {
  int *bounds;
  int32_t *kk;
  int ksize = coefficients(horizontal ? w : h, out_size, &bounds, &kk);
  int ow = horizontal ? out_size : w, oh = horizontal ? h : out_size;
  uint8_t *out = malloc((size_t)ow * oh * 3);
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++) {
      int o = horizontal ? x : y, min = bounds[o * 2], n = bounds[o * 2 + 1];
      for (int c = 0; c < 3; c++) {
        int64_t ss = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < n; i++) {
          size_t p = horizontal ? ((size_t)y * w + min + i) * 3 : ((size_t)(min + i) * w + x) * 3;
          ss += (int64_t)src[p + c] * kk[o * ksize + i];
        }
        out[((size_t)y * ow + x) * 3 + c] = clip8(ss);
      }
    }
  free(bounds);
  free(kk);
  return out;
}

void cp_resize(const uint8_t *rgb, int w, int h, uint8_t *out) {
  /* Pillow 13 runs the vertical pass first when the height shrinks more than twice the width. */
  int shrink_h = h - CP_SIZE, vertical_first = shrink_h > 0 && shrink_h > (w - CP_SIZE) * 2;
  const uint8_t *cur = rgb;
  uint8_t *owned = NULL;
  for (int pass = 0; pass < 2; pass++) {
    int horizontal = vertical_first ? pass == 1 : pass == 0;
    if ((horizontal ? w : h) == CP_SIZE) continue;
    uint8_t *next = resample_axis(cur, w, h, CP_SIZE, horizontal);
    free(owned);
    cur = owned = next;
    if (horizontal) w = CP_SIZE; else h = CP_SIZE;
  }
  memcpy(out, cur, CP_SIZE * CP_SIZE * 3);
  free(owned);
}

/* ------------------------------------------------------------------------------------------ */
/* The decoded image: 8-bit RGB, written pixel by pixel at its EXIF-oriented place. */

struct canvas {
  uint8_t *rgb; /* (height, width, 3) after orientation */
  int src_w, src_h, width, height, orientation;
};

static int canvas_start(struct canvas *cv, int w, int h, int orientation) {
  cv->src_w = w;
  cv->src_h = h;
  cv->orientation = orientation >= 2 && orientation <= 8 ? orientation : 1;
  int swap = cv->orientation >= 5; /* 5-8 turn the image a quarter: width and height swap */
  cv->width = swap ? h : w;
  cv->height = swap ? w : h;
  cv->rgb = malloc((size_t)w * h * 3);
  return cv->rgb != NULL;
}

/* Where source pixel (x, y) lands, as Pillow's ImageOps.exif_transpose moves it (2: FLIP_LEFT_RIGHT,
 * 3: ROTATE_180, 4: FLIP_TOP_BOTTOM, 5: TRANSPOSE, 6: ROTATE_270, 7: TRANSVERSE, 8: ROTATE_90). */
static uint8_t *canvas_at(struct canvas *cv, int x, int y) {
  int w = cv->src_w, h = cv->src_h, dx = x, dy = y;
  switch (cv->orientation) {
    case 2: dx = w - 1 - x; break;
    case 3: dx = w - 1 - x; dy = h - 1 - y; break;
    case 4: dy = h - 1 - y; break;
    case 5: dx = y; dy = x; break;
    case 6: dx = h - 1 - y; dy = x; break;
    case 7: dx = h - 1 - y; dy = w - 1 - x; break;
    case 8: dx = y; dy = w - 1 - x; break;
  }
  return cv->rgb + ((size_t)dy * cv->width + dx) * 3;
}

/* Alpha over opaque white with Pillow's integer arithmetic (AlphaComposite.c, 7 precision bits):
 * with the white background opaque, its coefficients reduce to a * 128 and (255 - a) * 128. */
static uint8_t over_white(int v, int a) {
  if (a == 0) return 255;
  uint32_t tmp = (uint32_t)v * a * 128 + 255u * (255 - a) * 128 + (0x80 << 7);
  return (uint8_t)((((tmp >> 8) + tmp) >> 8) >> 7);
}

static void put(struct canvas *cv, int x, int y, int r, int g, int b, int a) {
  uint8_t *p = canvas_at(cv, x, y);
  p[0] = a < 0 ? (uint8_t)r : over_white(r, a);
  p[1] = a < 0 ? (uint8_t)g : over_white(g, a);
  p[2] = a < 0 ? (uint8_t)b : over_white(b, a);
}

/* EXIF orientation (tag 0x0112 of IFD0) from TIFF-structured bytes ("II*\0" or "MM\0*"); 1 if none. */
static int exif_orientation(const uint8_t *tiff, size_t n) {
  if (n < 8) return 1;
  int le = tiff[0] == 'I' && tiff[1] == 'I';
  if (!le && !(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
#define U16(p) (le ? (p)[0] | (p)[1] << 8 : (p)[0] << 8 | (p)[1])
#define U32(p) (le ? (uint32_t)U16(p) | (uint32_t)U16((p) + 2) << 16 : (uint32_t)U16(p) << 16 | U16((p) + 2))
  uint32_t ifd = U32(tiff + 4);
  if (ifd > n - 2) return 1;
  int entries = U16(tiff + ifd);
  for (int i = 0; i < entries; i++) {
    size_t e = ifd + 2 + (size_t)i * 12;
    if (e + 12 > n) break;
    if (U16(tiff + e) != 0x0112) continue;
    int type = U16(tiff + e + 2); /* SHORT as the standard says; some writers use LONG */
    return type == 3 ? U16(tiff + e + 8) : type == 4 ? (int)U32(tiff + e + 8) : 1;
  }
  return 1;
#undef U16
#undef U32
}

static void say(char *why, size_t size, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(why, size, fmt, args);
  va_end(args);
}

static int over_cap(long long w, long long h, long long max_pixels, char *why, size_t size) {
  if (w * h <= max_pixels) return 0;
  /* Megapixels to whole numbers from 10 up, one decimal below (a 100,000-pixel cap is "0.1 MP"). */
  double mp = w * h / 1e6, cap = max_pixels / 1e6;
  say(why, size, "refused: %lldx%lld is %.*f megapixels, over the %.*f MP limit (CIFAR_PACK_MAX_PIXELS raises it)",
      w, h, mp < 10 ? 1 : 0, mp, cap < 10 ? 1 : 0, cap);
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG: libpng's low-level reader with no transformations but interlace handling; each row is
 * unpacked here the way Pillow's PngImagePlugin maps (bit depth, colour type) to its modes. */

struct png_failure {
  jmp_buf jump;
  char *why;
  size_t size;
  FILE *file;
};

static void png_fail(png_structp png, png_const_charp message) {
  struct png_failure *f = png_get_error_ptr(png);
  say(f->why, f->size, "not a readable PNG (%s)", message);
  longjmp(f->jump, 1);
}

static void png_quiet(png_structp png, png_const_charp message) { (void)png, (void)message; }

static void png_read_file(png_structp png, png_bytep data, size_t length) {
  struct png_failure *f = png_get_error_ptr(png);
  if (fread(data, 1, length, f->file) != length) png_error(png, "truncated: the file ends before the image does");
}

/* One decoded row -> the canvas. Samples are big-endian when 16-bit, packed MSB first below 8. */
static void png_row(struct canvas *cv, int y, const uint8_t *row, int depth, int type, const uint8_t *plte,
                    int n_plte, const uint8_t *trns, int n_trns) {
  int channels = type == 0 ? 1 : type == 2 ? 3 : type == 3 ? 1 : type == 4 ? 2 : 4;
  int step = depth == 16 ? 2 : 1; /* bytes per sample at 8 and 16 bits; below 8 they are packed */
  for (int x = 0; x < cv->src_w; x++) {
    int s[4];
    for (int c = 0; c < channels; c++) {
      if (depth < 8) {
        int bit = (x * channels + c) * depth;
        s[c] = (row[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
      } else {
        const uint8_t *p = row + ((size_t)x * channels + c) * step;
        s[c] = depth == 16 ? p[0] << 8 | p[1] : p[0];
      }
    }
    if (type == 3) { /* palette: an index past the palette is black; tRNS gives alpha */
      const uint8_t *rgb = s[0] < n_plte ? plte + s[0] * 3 : (const uint8_t *)"\0\0\0";
      put(cv, x, y, rgb[0], rgb[1], rgb[2], trns ? (s[0] < n_trns ? trns[s[0]] : 255) : -1);
    } else if (type == 0) { /* "1", "L;2", "L;4" scale to 0..255; "I;16" by (v + 128) / 257, as cifar-pack */
      int v = depth == 16 ? (s[0] + 128) / 257 : depth == 8 ? s[0] : s[0] * 255 / ((1 << depth) - 1);
      put(cv, x, y, v, v, v, -1);
    } else { /* "RGB;16B", "RGBA;16B", "LA;16B": the high byte */
      for (int c = 0; c < channels; c++) s[c] = depth == 16 ? s[c] >> 8 : s[c];
      if (type == 2) put(cv, x, y, s[0], s[1], s[2], -1);
      else if (type == 4) put(cv, x, y, s[0], s[0], s[0], s[1]);
      else put(cv, x, y, s[0], s[1], s[2], s[3]);
    }
  }
}

static int decode_png(FILE *file, long long max_pixels, struct canvas *cv, char *why, size_t size) {
  struct png_failure failure = {.why = why, .size = size, .file = file};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, png_fail, png_quiet);
  png_infop info = png_create_info_struct(png);
  uint8_t *volatile image = NULL;
  if (setjmp(failure.jump)) {
    png_destroy_read_struct(&png, &info, NULL);
    free(image);
    return -1;
  }
  png_set_read_fn(png, NULL, png_read_file);
  /* Pillow refuses a bad CRC in every chunk before the image data (libpng by default only warns on
   * ancillary ones) and never checks the CRCs of IDAT and after: the same two rules here. */
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
  png_uint_32 w, h;
  int depth, type, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &type, &interlace, NULL, NULL);
  if (over_cap(w, h, max_pixels, why, size)) longjmp(failure.jump, 1);
  png_bytep exif = NULL, trns = NULL;
  png_uint_32 n_exif = 0;
  png_colorp plte = NULL;
  int n_plte = 0, n_trns = 0;
  png_get_eXIf_1(png, info, &n_exif, &exif);
  png_get_PLTE(png, info, &plte, &n_plte);
  if (type == PNG_COLOR_TYPE_PALETTE) png_get_tRNS(png, info, &trns, &n_trns, NULL);
  if (!canvas_start(cv, (int)w, (int)h, exif ? exif_orientation(exif, n_exif) : 1)) png_error(png, "out of memory");
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  size_t stride = png_get_rowbytes(png, info);
  /* An interlaced image arrives in 7 passes over the whole image: keep it; otherwise one row. */
  image = malloc(stride * (passes > 1 ? h : 1));
  if (!image) png_error(png, "out of memory");
  for (int pass = 0; pass < passes - 1; pass++)
    for (png_uint_32 y = 0; y < h; y++) png_read_row(png, image + stride * y, NULL);
  for (png_uint_32 y = 0; y < h; y++) { /* the last (or only) pass completes each row in turn */
    uint8_t *row = image + (passes > 1 ? stride * y : 0);
    png_read_row(png, row, NULL);
    png_row(cv, (int)y, row, depth, type, (const uint8_t *)plte, n_plte, trns, n_trns);
  }
  /* Nothing after the image data is read: Pillow accepts a file that stops there (no IEND). */
  png_destroy_read_struct(&png, &info, NULL);
  free(image);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* JPEG: libjpeg-turbo with its defaults, as Pillow's JpegDecode.c drives it. A "premature end"
 * is only a warning to libjpeg (it invents the missing data); Pillow refuses such a file, so do we. */

struct jpeg_failure {
  struct jpeg_error_mgr base;
  jmp_buf jump;
  int truncated;
};

static void jpeg_fail(j_common_ptr info) { longjmp(((struct jpeg_failure *)info->err)->jump, 1); }

static void jpeg_note(j_common_ptr info, int level) {
  /* Warnings (level -1) are kept quiet, as Pillow keeps them; a premature end is remembered. */
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) ((struct jpeg_failure *)info->err)->truncated = 1;
}

static int decode_jpeg(FILE *file, long long max_pixels, struct canvas *cv, char *why, size_t size) {
  struct jpeg_decompress_struct info;
  struct jpeg_failure err = {.truncated = 0};
  uint8_t *volatile row = NULL;
  info.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_fail;
  err.base.emit_message = jpeg_note;
  if (setjmp(err.jump)) {
    if (!*why) {
      char message[JMSG_LENGTH_MAX];
      err.base.format_message((j_common_ptr)&info, message);
      say(why, size, "not a readable JPEG (%s)", message);
    }
    jpeg_destroy_decompress(&info);
    free(row);
    return -1;
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file);
  jpeg_save_markers(&info, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&info, TRUE);
  if (err.truncated) goto truncated;
  if (over_cap(info.image_width, info.image_height, max_pixels, why, size)) longjmp(err.jump, 1);
  int orientation = 1;
  for (jpeg_saved_marker_ptr m = info.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && !memcmp(m->data, "Exif\0\0", 6)) {
      orientation = exif_orientation(m->data + 6, m->data_length - 6);
      break; /* the first Exif block, as Pillow's info["exif"] */
    }
  /* Pillow's mode comes from the component count: 1 -> L, 3 -> RGB, 4 -> CMYK (libjpeg turns YCCK
   * into CMYK). A CMYK JPEG is read as Adobe-inverted ("CMYK;I") and converted by cmyk2rgb. */
  int cmyk = info.num_components == 4;
  info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&info);
  if (err.truncated) goto truncated;
  int n = info.output_components;
  if (!canvas_start(cv, (int)info.output_width, (int)info.output_height, orientation)) {
    say(why, size, "out of memory for %ux%u pixels", info.output_width, info.output_height);
    longjmp(err.jump, 1);
  }
  row = malloc((size_t)info.output_width * n);
  while (info.output_scanline < info.output_height) {
    int y = (int)info.output_scanline;
    JSAMPROW rows[1] = {row};
    jpeg_read_scanlines(&info, rows, 1);
    if (err.truncated) goto truncated;
    for (int x = 0; x < cv->src_w; x++) {
      const uint8_t *p = row + (size_t)x * n;
      if (n == 1) put(cv, x, y, p[0], p[0], p[0], -1);
      else if (n == 3) put(cv, x, y, p[0], p[1], p[2], -1);
      else { /* cmyk2rgb of the inverted samples: nk = 255 - k, out = nk - nk * c / 255 (Convert.c) */
        int nk = p[3], rgb[3]; /* inverted k is the raw sample: 255 - (255 - raw) */
        for (int c = 0; c < 3; c++) {
          int v = 255 - p[c], t = v * nk + 128, q = nk - (((t >> 8) + t) >> 8);
          rgb[c] = q < 0 ? 0 : q > 255 ? 255 : q;
        }
        put(cv, x, y, rgb[0], rgb[1], rgb[2], -1);
      }
    }
  }
  jpeg_finish_decompress(&info);
  if (err.truncated) goto truncated;
  jpeg_destroy_decompress(&info);
  free(row);
  return 0;
truncated:
  say(why, size, "truncated JPEG: the file ends before the image does");
  longjmp(err.jump, 1);
}

/* ------------------------------------------------------------------------------------------ */

/* Why a file that is neither PNG nor JPEG is refused: the formats Pillow also reads are named. */
static const char *other_format(const uint8_t *m, size_t n) {
  if (n >= 4 && !memcmp(m, "GIF8", 4)) return "a GIF image: this decoder reads PNG and JPEG only (convert it first)";
  if (n >= 2 && !memcmp(m, "BM", 2)) return "a BMP image: this decoder reads PNG and JPEG only (convert it first)";
  if (n >= 4 && (!memcmp(m, "II*\0", 4) || !memcmp(m, "MM\0*", 4)))
    return "a TIFF image: this decoder reads PNG and JPEG only (convert it first)";
  if (n >= 4 && !memcmp(m, "RIFF", 4)) return "a RIFF (WebP?) file: this decoder reads PNG and JPEG only (convert it first)";
  return "not a readable image (neither PNG nor JPEG by its first bytes)";
}

int cp_load_image(const char *path, long long max_pixels, uint8_t *out, char *why, size_t why_size) {
  why[0] = '\0';
  struct stat st;
  if (stat(path, &st) != 0) {
    say(why, why_size, "cannot open it (%s)", strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) { /* a FIFO would block the open, a directory reads as empty */
    say(why, why_size, S_ISDIR(st.st_mode) ? "is a directory, not an image" : "not a regular file (a FIFO, device or socket)");
    return -1;
  }
  FILE *file = fopen(path, "rb");
  if (!file) {
    say(why, why_size, "cannot open it (no such file, or not readable)");
    return -1;
  }
  uint8_t magic[8] = {0};
  size_t got = fread(magic, 1, sizeof magic, file);
  rewind(file);
  struct canvas cv = {0};
  int status = -1;
  if (got == 0) say(why, why_size, "not a readable image (empty file)");
  else if (got == 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) status = decode_png(file, max_pixels, &cv, why, why_size);
  else if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff)
    status = decode_jpeg(file, max_pixels, &cv, why, why_size);
  else say(why, why_size, "%s", other_format(magic, got));
  fclose(file);
  if (status == 0) cp_resize(cv.rgb, cv.width, cv.height, out);
  free(cv.rgb);
  return status;
}

long long cp_max_pixels(const char *input_json) {
  const char *env = getenv("CIFAR_PACK_MAX_PIXELS");
  if (env && *env) {
    char *end;
    long long v = strtoll(env, &end, 10);
    return *end || v < 1 ? 0 : v;
  }
  const char *key = input_json ? strstr(input_json, "\"max_pixels\"") : NULL;
  if (!key) return -1;
  key = strchr(key + 12, ':');
  return key ? strtoll(key + 1, NULL, 10) : -1;
}
