/* The model's preprocessing in C: an image file -> 32x32x3 uint8 RGB, exactly as cifar-pack's
 * Python predictor (Pillow) makes it (docs/embedding.md, "The contract"):
 *
 *   1. the format from the file's first bytes (PNG or JPEG), never from its name;
 *   2. the size from the header, refused above `max_pixels` before any pixel is decoded;
 *   3. decoding as strict as Pillow's: a truncated file, a bad PNG CRC, a broken stream is an error;
 *      PNG: every colour type and bit depth unpacked as Pillow does (16-bit grey scaled by
 *      65535/255, other 16-bit samples their high byte, tRNS used for palettes only, gAMA and
 *      iCCP ignored); JPEG: libjpeg-turbo (Pillow's decoder) with its defaults, CMYK and YCCK as
 *      Adobe-inverted CMYK converted by Pillow's formula;
 *   4. EXIF orientation (JPEG APP1, PNG eXIf) applied;
 *   5. alpha composited over white with Pillow's integer arithmetic;
 *   6. Pillow's BILINEAR resize to 32x32 (a port of libImaging/Resample.c).
 *
 * Shared by examples/c, examples/cpp, examples/go (cgo) and examples/rust (the cc crate): one
 * decoder, so every language gives the same bytes. Needs libpng and libjpeg(-turbo). */
#ifndef CIFAR_PACK_IMAGE_H
#define CIFAR_PACK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CP_SIZE 32 /* the model's input is [N, 32, 32, 3] */

#ifdef __cplusplus
extern "C" {
#endif

/* Decode `path` into the model's 32x32 RGB input `out` (32 * 32 * 3 bytes, HWC). Returns 0, or
 * -1 with a one-line reason in `why` (what is wrong with the file, without its name). */
int cp_load_image(const char *path, long long max_pixels, uint8_t *out, char *why, size_t why_size);

/* Pillow's BILINEAR resize of an 8-bit RGB image (w x h) to CP_SIZE x CP_SIZE, into `out`. */
void cp_resize(const uint8_t *rgb, int w, int h, uint8_t *out);

/* The pixel cap the model's metadata declares: the "max_pixels" number inside the JSON of
 * metadata_props["input"] (NULL or absent: -1). CIFAR_PACK_MAX_PIXELS, if set, overrides it, as
 * it does for the Python predictor. Returns -1 when neither says, 0 for a malformed variable. */
long long cp_max_pixels(const char *input_json);

#ifdef __cplusplus
}
#endif

#endif
