/* See image.h. Decoding: libpng's simplified API (any PNG -> 8-bit RGBA) and libjpeg-turbo with
 * its defaults (accurate integer IDCT, fancy upsampling), the library Pillow decodes JPEG with.
 * Not done here (Python's predictor does both): EXIF orientation, CMYK JPEGs. */
#include "image.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

#define MAX_PIXELS 50000000L /* cifar-pack's default cap: refuse larger images from the header */
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
  uint8_t *cur = malloc((size_t)w * h * 3);
  memcpy(cur, rgb, (size_t)w * h * 3);
  for (int pass = 0; pass < 2; pass++) {
    int horizontal = vertical_first ? pass == 1 : pass == 0;
    if ((horizontal ? w : h) == CP_SIZE) continue;
    uint8_t *next = resample_axis(cur, w, h, CP_SIZE, horizontal);
    free(cur);
    cur = next;
    if (horizontal) w = CP_SIZE; else h = CP_SIZE;
  }
  memcpy(out, cur, CP_SIZE * CP_SIZE * 3);
  free(cur);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding to RGBA, then alpha over white: out = (c * a + 255 * (255 - a)) / 255, rounded. */

static const char *decode_png(const char *path, uint8_t **rgba, int *w, int *h) {
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path)) return "not a readable PNG";
  if ((long)image.width * image.height > MAX_PIXELS) {
    png_image_free(&image);
    return "larger than 50 megapixels";
  }
  image.format = PNG_FORMAT_RGBA;
  *rgba = malloc(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, NULL, *rgba, 0, NULL)) {
    free(*rgba);
    return "not a readable PNG";
  }
  *w = (int)image.width;
  *h = (int)image.height;
  return NULL;
}

struct jpeg_failure {
  struct jpeg_error_mgr base;
  jmp_buf jump;
};

static void jpeg_fail(j_common_ptr info) { longjmp(((struct jpeg_failure *)info->err)->jump, 1); }

static const char *decode_jpeg(FILE *file, uint8_t **rgba, int *w, int *h) {
  struct jpeg_decompress_struct info;
  struct jpeg_failure err;
  uint8_t *volatile rgb = NULL;
  info.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_fail;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    free(rgb);
    return "not a readable JPEG";
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file);
  jpeg_read_header(&info, TRUE);
  if ((long)info.image_width * info.image_height > MAX_PIXELS) {
    jpeg_destroy_decompress(&info);
    return "larger than 50 megapixels";
  }
  info.out_color_space = JCS_RGB; /* greyscale and YCbCr alike */
  jpeg_start_decompress(&info);
  *w = (int)info.output_width;
  *h = (int)info.output_height;
  rgb = malloc((size_t)*w * *h * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = rgb + (size_t)info.output_scanline * *w * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  *rgba = malloc((size_t)*w * *h * 4);
  for (size_t i = 0; i < (size_t)*w * *h; i++) {
    memcpy(*rgba + i * 4, rgb + i * 3, 3);
    (*rgba)[i * 4 + 3] = 255;
  }
  free(rgb);
  return NULL;
}

const char *cp_load_image(const char *path, uint8_t out[CP_SIZE * CP_SIZE * 3]) {
  FILE *file = fopen(path, "rb");
  if (!file) return "no such file or not readable";
  unsigned char magic[2] = {0, 0};
  size_t got = fread(magic, 1, 2, file);
  rewind(file);
  uint8_t *rgba = NULL;
  int w = 0, h = 0;
  const char *why = "not a PNG or JPEG file";
  if (got == 2 && magic[0] == 0x89 && magic[1] == 'P') {
    fclose(file);
    file = NULL;
    why = decode_png(path, &rgba, &w, &h);
  } else if (got == 2 && magic[0] == 0xff && magic[1] == 0xd8) {
    why = decode_jpeg(file, &rgba, &w, &h);
  }
  if (file) fclose(file);
  if (why) return why;
  uint8_t *rgb = malloc((size_t)w * h * 3);
  for (size_t i = 0; i < (size_t)w * h; i++) {
    int a = rgba[i * 4 + 3];
    for (int c = 0; c < 3; c++) {
      int v = rgba[i * 4 + c];
      rgb[i * 3 + c] = a == 255 ? (uint8_t)v : (uint8_t)lround((v * a + 255.0 * (255 - a)) / 255.0);
    }
  }
  free(rgba);
  cp_resize(rgb, w, h, out);
  free(rgb);
  return NULL;
}
