/* The model's preprocessing in C: a PNG or JPEG file -> 32x32x3 uint8 RGB, as cifar-pack's
 * Python predictor makes it (docs/embedding.md, "The contract"): decode with libpng / libjpeg-turbo,
 * composite alpha over white, then Pillow's BILINEAR resize (a port of libImaging/Resample.c).
 * Shared by examples/c and examples/cpp. */
#ifndef CIFAR_PACK_IMAGE_H
#define CIFAR_PACK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CP_SIZE 32 /* the model's input is [N, 32, 32, 3] */

/* Decode `path` and make the model's 32x32 RGB input in `out` (32 * 32 * 3 bytes, HWC).
 * Returns NULL on success, else a static message saying what is wrong with the file. */
const char *cp_load_image(const char *path, uint8_t out[CP_SIZE * CP_SIZE * 3]);

/* Pillow's BILINEAR resize of an 8-bit RGB image (w x h) to CP_SIZE x CP_SIZE, into `out`. */
void cp_resize(const uint8_t *rgb, int w, int h, uint8_t *out);

#endif
