// Classify images with a cifar-pack ONNX model from Go: github.com/yalue/onnxruntime_go over the
// onnxruntime shared library (ORT_LIB; examples/go/run names it), and the model's preprocessing
// from examples/c/image.c through cgo: libjpeg-turbo and libpng, decoded exactly as Pillow does.
// (Go's own image/jpeg agreed on 493 of 500 photos' labels: another IDCT and chroma upsampling.)
//
//	ORT_LIB=/path/libonnxruntime.so.1 ./predict MODEL.onnx IMAGE...
//
// Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
// significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
// Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].
package main

/*
#cgo CFLAGS: -O2 -std=c11
#cgo LDFLAGS: -lpng -ljpeg -lm
#include <stdlib.h>
#include "image.h"
*/
import "C"

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

const (
	size  = 32
	batch = 256
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run classifies files[1:] with the model files[0]: 0 when every image was answered, 1 when some
// file could not be read, 2 when the model could not be used. Everything opened is closed here.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "usage: predict MODEL.onnx IMAGE...")
		return 2
	}
	ort.SetSharedLibraryPath(os.Getenv("ORT_LIB"))
	if err := ort.InitializeEnvironment(); err != nil {
		fmt.Fprintln(stderr, "error: onnxruntime:", err)
		return 2
	}
	defer ort.DestroyEnvironment()
	model := args[0]
	labels, maxPixels, err := readMetadata(model)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	session, err := ort.NewDynamicAdvancedSession(model, []string{"images"}, []string{"probabilities"}, nil)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s: %v\n", model, err)
		return 2
	}
	defer session.Destroy()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	failed := 0
	var paths []string
	var pixels []uint8
	flush := func() error {
		err := classify(session, paths, pixels, labels, out)
		paths, pixels = nil, nil
		return err
	}
	for _, path := range args[1:] {
		rgb, err := load(path, maxPixels)
		if err != nil {
			fmt.Fprintf(stderr, "%s\terror: %v\n", path, err)
			failed = 1
			continue
		}
		paths, pixels = append(paths, path), append(pixels, rgb...)
		if len(paths) == batch {
			if err := flush(); err != nil {
				fmt.Fprintln(stderr, "error: onnxruntime:", err)
				return 2
			}
		}
	}
	if len(paths) > 0 {
		if err := flush(); err != nil {
			fmt.Fprintln(stderr, "error: onnxruntime:", err)
			return 2
		}
	}
	return failed
}

// readMetadata returns the class names (metadata_props["class_names"], a JSON list) and the pixel
// cap: CIFAR_PACK_MAX_PIXELS if set, else the max_pixels of metadata_props["input"].
func readMetadata(model string) ([]string, int64, error) {
	meta, err := ort.GetModelMetadata(model)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", model, err)
	}
	defer meta.Destroy()
	text, ok, err := meta.LookupCustomMetadataMap("class_names")
	if err != nil || !ok {
		return nil, 0, fmt.Errorf("%s: no class_names in its metadata (not a cifar-pack export?)", model)
	}
	var labels []string
	if err := json.Unmarshal([]byte(text), &labels); err != nil {
		return nil, 0, fmt.Errorf("%s: class_names is not a JSON list of strings: %w", model, err)
	}
	input, _, _ := meta.LookupCustomMetadataMap("input")
	cInput := C.CString(input)
	defer C.free(unsafe.Pointer(cInput))
	switch maxPixels := int64(C.cp_max_pixels(cInput)); {
	case maxPixels == 0:
		return nil, 0, errors.New("CIFAR_PACK_MAX_PIXELS must be a whole number of at least 1")
	case maxPixels < 0:
		return nil, 0, fmt.Errorf("%s: no max_pixels in its input metadata (exported by an older cifar-pack): "+
			"set CIFAR_PACK_MAX_PIXELS, or re-export it with cifar-pack export", model)
	default:
		return labels, maxPixels, nil
	}
}

// classify runs one batch, (n, 32, 32, 3) uint8 -> (n, classes) float32, and prints a line per image.
func classify(session *ort.DynamicAdvancedSession, paths []string, pixels []uint8, labels []string, out io.Writer) error {
	n := int64(len(paths))
	input, err := ort.NewTensor(ort.NewShape(n, size, size, 3), pixels)
	if err != nil {
		return err
	}
	defer input.Destroy()
	output, err := ort.NewEmptyTensor[float32](ort.NewShape(n, int64(len(labels))))
	if err != nil {
		return err
	}
	defer output.Destroy()
	if err := session.Run([]ort.Value{input}, []ort.Value{output}); err != nil {
		return err
	}
	probs := output.GetData()
	for i, path := range paths {
		row := probs[i*len(labels) : (i+1)*len(labels)]
		best, text := 0, make([]string, len(row))
		for c, p := range row {
			if p > row[best] {
				best = c
			}
			text[c] = strconv.FormatFloat(float64(p), 'g', 9, 32)
		}
		fmt.Fprintf(out, "%s\t%s\t%s\n", path, labels[best], strings.Join(text, " "))
	}
	return nil
}

// load makes the model's (32, 32, 3) uint8 RGB input from an image file with image.c, or says
// what is wrong with the file.
func load(path string, maxPixels int64) ([]uint8, error) {
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	pixels := make([]uint8, size*size*3)
	var why [256]C.char
	if C.cp_load_image(cPath, C.longlong(maxPixels), (*C.uint8_t)(&pixels[0]), &why[0], C.size_t(len(why))) != 0 {
		return nil, errors.New(C.GoString(&why[0]))
	}
	return pixels, nil
}
