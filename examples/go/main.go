// Classify images with a cifar-pack ONNX model from Go: github.com/yalue/onnxruntime_go over the
// onnxruntime shared library (ORT_LIB: the Python package's, by examples/go/run), the standard
// library's image/png and image/jpeg, and a port of Pillow's BILINEAR resize.
//
//	ORT_LIB=/path/libonnxruntime.so.1.32.0 ./predict MODEL.onnx IMAGE...
//
// Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
// significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
// Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"math"
	"os"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

const (
	size          = 32
	batch         = 256
	precisionBits = 32 - 8 - 2
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: predict MODEL.onnx IMAGE...")
		os.Exit(2)
	}
	ort.SetSharedLibraryPath(os.Getenv("ORT_LIB"))
	if err := ort.InitializeEnvironment(); err != nil {
		fail(err)
	}
	defer ort.DestroyEnvironment()
	model := os.Args[1]
	labels := classNames(model)
	session, err := ort.NewDynamicAdvancedSession(model, []string{"images"}, []string{"probabilities"}, nil)
	if err != nil {
		fail(err)
	}
	defer session.Destroy()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	failed := 0
	var paths []string
	var pixels []uint8
	for _, path := range os.Args[2:] {
		rgb, err := load(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s\terror: %v\n", path, err)
			failed = 1
			continue
		}
		paths, pixels = append(paths, path), append(pixels, rgb...)
		if len(paths) == batch {
			classify(session, paths, pixels, labels, out)
			paths, pixels = nil, nil
		}
	}
	if len(paths) > 0 {
		classify(session, paths, pixels, labels, out)
	}
	out.Flush()
	os.Exit(failed)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(2)
}

// classNames reads metadata_props["class_names"], a JSON list of strings.
func classNames(model string) []string {
	meta, err := ort.GetModelMetadata(model)
	if err != nil {
		fail(err)
	}
	defer meta.Destroy()
	text, ok, err := meta.LookupCustomMetadataMap("class_names")
	if err != nil || !ok {
		fail(fmt.Errorf("%s: no class_names in its metadata", model))
	}
	var labels []string
	if err := json.Unmarshal([]byte(text), &labels); err != nil {
		fail(err)
	}
	return labels
}

// classify runs one batch, (n, 32, 32, 3) uint8 -> (n, classes) float32, and prints a line per image.
func classify(session *ort.DynamicAdvancedSession, paths []string, pixels []uint8, labels []string, out *bufio.Writer) {
	n := int64(len(paths))
	input, err := ort.NewTensor(ort.NewShape(n, size, size, 3), pixels)
	if err != nil {
		fail(err)
	}
	defer input.Destroy()
	output, err := ort.NewEmptyTensor[float32](ort.NewShape(n, int64(len(labels))))
	if err != nil {
		fail(err)
	}
	defer output.Destroy()
	if err := session.Run([]ort.Value{input}, []ort.Value{output}); err != nil {
		fail(err)
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
}

// load decodes a PNG or JPEG and makes the model's 32x32 RGB input: alpha over white, then
// Pillow's BILINEAR resize.
func load(path string) ([]uint8, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("no such file or not readable")
	}
	defer file.Close()
	config, _, err := image.DecodeConfig(file)
	if err != nil {
		return nil, fmt.Errorf("not a readable image")
	}
	if int64(config.Width)*int64(config.Height) > 50_000_000 {
		return nil, fmt.Errorf("larger than 50 megapixels")
	}
	if _, err := file.Seek(0, 0); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(file)
	if err != nil {
		return nil, fmt.Errorf("not a readable image")
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	rgb := make([]int32, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// Straight (not premultiplied) 8-bit colour: a PNG with alpha decodes to NRGBA already.
			px := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			for c, v := range []uint8{px.R, px.G, px.B} {
				out := int32(v)
				if px.A != 255 {
					out = int32(math.Round((float64(v)*float64(px.A) + 255*float64(255-px.A)) / 255))
				}
				rgb[(y*w+x)*3+c] = out
			}
		}
	}
	small := resize(rgb, w, h)
	pixels := make([]uint8, len(small))
	for i, v := range small {
		pixels[i] = uint8(v)
	}
	return pixels, nil
}

// resize is Pillow's resample (libImaging/Resample.c), as examples/c/image.c.
func resize(rgb []int32, w, h int) []int32 {
	shrinkH := h - size
	verticalFirst := shrinkH > 0 && shrinkH > (w-size)*2
	for pass := 0; pass < 2; pass++ {
		horizontal := pass == 0
		if verticalFirst {
			horizontal = pass == 1
		}
		if (horizontal && w == size) || (!horizontal && h == size) {
			continue
		}
		rgb = resampleAxis(rgb, w, h, horizontal)
		if horizontal {
			w = size
		} else {
			h = size
		}
	}
	return rgb
}

func resampleAxis(src []int32, w, h int, horizontal bool) []int32 {
	inSize := h
	if horizontal {
		inSize = w
	}
	scale := float64(inSize) / size
	filterscale := math.Max(scale, 1.0)
	support := filterscale
	ksize := int(math.Ceil(support))*2 + 1
	kk := make([]int64, size*ksize)
	bounds := make([]int, size*2)
	for xx := 0; xx < size; xx++ {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		weights, total := make([]float64, xmax), 0.0
		for x := 0; x < xmax; x++ {
			t := math.Abs((float64(x+xmin) - center + 0.5) / filterscale)
			if t < 1.0 {
				weights[x] = 1.0 - t
			}
			total += weights[x]
		}
		for x, v := range weights {
			if total != 0 {
				v /= total
			}
			if v < 0 {
				kk[xx*ksize+x] = int64(-0.5 + v*(1<<precisionBits))
			} else {
				kk[xx*ksize+x] = int64(0.5 + v*(1<<precisionBits))
			}
		}
		bounds[xx*2], bounds[xx*2+1] = xmin, xmax
	}
	ow, oh := w, size
	if horizontal {
		ow, oh = size, h
	}
	out := make([]int32, ow*oh*3)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			o := y
			if horizontal {
				o = x
			}
			lo, n := bounds[o*2], bounds[o*2+1]
			for c := 0; c < 3; c++ {
				ss := int64(1) << (precisionBits - 1)
				for i := 0; i < n; i++ {
					p := ((lo+i)*w + x) * 3
					if horizontal {
						p = (y*w + lo + i) * 3
					}
					ss += int64(src[p+c]) * kk[o*ksize+i]
				}
				out[(y*ow+x)*3+c] = int32(min(max(ss>>precisionBits, 0), 255))
			}
		}
	}
	return out
}
