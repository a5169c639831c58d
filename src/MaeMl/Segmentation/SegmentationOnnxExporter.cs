using MaeMl.Model;
using MaeMl.Onnx;
using Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;

namespace MaeMl.Segmentation;

/// <summary>Input and output names of an exported segmentation model.</summary>
public static class SegmentationOnnxNames
{
    /// <summary>Input: [N, 3, H, W] RGB planes 0..255 at the model's size (what ML.NET's ExtractPixels gives).</summary>
    public const string Pixels = EncoderOnnxNames.Pixels;
    /// <summary>[N, H, W] int64 class id per pixel (ArgMax over the classes).</summary>
    public const string ClassMap = "seg_class_map";
    /// <summary>[N, K, H, W] float class probabilities (softmax), when exported.</summary>
    public const string Probabilities = "seg_probabilities";
    /// <summary>Input (with <see cref="SegmentationOnnxOptions.ImageSizeOutput"/>): [N, 2] float width and height of the original
    /// image. The whole batch shares the first row's size (ML.NET scores one row at a time).</summary>
    public const string ImageSize = "seg_image_size";
    /// <summary>[N, H, W] uint32 class id per pixel of the original image (with <see cref="SegmentationOnnxOptions.ImageSizeOutput"/>):
    /// <see cref="ClassMap"/> resized nearest-neighbour by <see cref="NearestResize"/>'s integer indices.</summary>
    public const string ImageClassMap = "seg_image_class_map";
}

/// <summary>What <see cref="SegmentationOnnxExporter"/> puts into the graph besides <see cref="SegmentationOnnxNames.ClassMap"/>.</summary>
public sealed record SegmentationOnnxOptions
{
    /// <summary>Also output <see cref="SegmentationOnnxNames.Probabilities"/> [N, K, H, W].</summary>
    public bool IncludeProbabilities { get; init; }
    /// <summary>Also take <see cref="SegmentationOnnxNames.ImageSize"/> and output <see cref="SegmentationOnnxNames.ImageClassMap"/>,
    /// the class map at the original image's size (what the ML.NET segmenter returns). The graph then needs both inputs.</summary>
    public bool ImageSizeOutput { get; init; }
    /// <summary>Class names written to the metadata (<c>maeml.class_names</c>, a JSON array), or null.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }
}

/// <summary>
/// Nearest-neighbour resizing with integer indices, the same in C# and in the exported graph: destination pixel i of n takes
/// source pixel floor((2i + 1) m / 2n) of m (the source pixel under the destination pixel's centre).
/// </summary>
public static class NearestResize
{
    /// <summary>The source index of destination index <paramref name="i"/> when <paramref name="sourceSize"/> pixels become <paramref name="size"/>.</summary>
    public static int SourceIndex(int i, int size, int sourceSize) => (int)((2L * i + 1) * sourceSize / (2L * size));

    /// <summary>A row-major <paramref name="sourceWidth"/> x <paramref name="sourceHeight"/> map resized to <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static T[] Resize<T>(ReadOnlySpan<T> source, int sourceWidth, int sourceHeight, int width, int height)
    {
        if (source.Length != (long)sourceWidth * sourceHeight) throw new ArgumentException($"{source.Length} values for a {sourceWidth}x{sourceHeight} map");
        var result = new T[(long)width * height];
        var xs = new int[width];
        for (int x = 0; x < width; x++) xs[x] = SourceIndex(x, width, sourceWidth);
        for (int y = 0; y < height; y++)
        {
            int row = SourceIndex(y, height, sourceHeight) * sourceWidth;
            for (int x = 0; x < width; x++) result[(long)y * width + x] = source[row + xs[x]];
        }
        return result;
    }
}

/// <summary>
/// Exports a <see cref="SegmentationModel"/> to ONNX: preprocessing and ViT (as the encoder exporter), the head, bilinear
/// upsampling to the input size, ArgMax per pixel (and optionally Softmax probabilities, and the class map resized to the
/// original image). Batch is dynamic; opset 17.
/// </summary>
public static class SegmentationOnnxExporter
{
    /// <summary>Builds the graph from <paramref name="model"/>'s weights, writes it to <paramref name="path"/> atomically (with
    /// <c>maeml.*</c> metadata: task, image size, classes, head, preprocessing) and returns it. Outputs
    /// <see cref="SegmentationOnnxNames.ClassMap"/> and, with <paramref name="includeProbabilities"/>, <see cref="SegmentationOnnxNames.Probabilities"/>.</summary>
    public static ModelProto Export(SegmentationModel model, string path, bool includeProbabilities = false) =>
        Export(model, path, new SegmentationOnnxOptions { IncludeProbabilities = includeProbabilities });

    /// <summary>As <see cref="Export(SegmentationModel, string, bool)"/> with the outputs of <paramref name="options"/>.</summary>
    public static ModelProto Export(SegmentationModel model, string path, SegmentationOnnxOptions options)
    {
        var onnx = Build(model, options);
        VitEncoderOnnxExporter.Save(onnx, path);
        return onnx;
    }

    /// <summary>The graph of <see cref="Export(SegmentationModel, string, SegmentationOnnxOptions)"/>, in memory.</summary>
    public static ModelProto Build(SegmentationModel model, SegmentationOnnxOptions? options = null)
    {
        options ??= new SegmentationOnnxOptions();
        var c = model.Config;
        var e = c.Encoder;
        bool linear = c.Head == SegmentationHeadKind.Linear;
        var w = new DenseOnnxWriter(model.state_dict(), linear ? "backbone." : "backbone.net.", e, attention: c.Attention);
        var g = w.G;
        var map = w.FeatureMap();
        string logits;
        var (width, height) = e.InputSize;
        var sizes = DenseOnnxWriter.PyramidLevelSizes(e.GridHeight, e.GridWidth, c.Scales);   // finest first
        (int Height, int Width) low;   // the logits' map
        if (linear)
        {
            logits = w.Conv(map, "head.0");
            low = (e.GridHeight, e.GridWidth);
        }
        else
        {
            var levels = w.Pyramid(map, "backbone.", c.Scales, c.Scales.Select(s => (int)(e.PatchSize / s)).ToArray());
            if (c.Head == SegmentationHeadKind.UperNet) logits = UperHeadOnnx.Write(w, levels, sizes);
            else
            {
                var x = levels[0];
                for (int i = 1; i < levels.Length; i++)
                    x = g.Node("Add", [x, Resize(w, levels[i], $"fuse_up_{i}", sizes[i], sizes[0])], $"fuse_{i}");
                x = w.Conv(x, "head.0", padding: 1);
                x = w.LayerNorm2d(x, "head.1");
                x = w.Gelu(x, "head.2");
                logits = w.Conv(x, "head.3");
            }
            low = sizes[0];
        }
        var full = low == (height, width) ? logits : Resize(w, logits, "logits_upsampled", low, (height, width));   // [N, K, H, W]
        var classes = g.Node("ArgMax", [full], "class_map", Attr("axis", 1L), Attr("keepdims", 0L));
        g.Output(classes, SegmentationOnnxNames.ClassMap, TensorProto.Types.DataType.Int64, "batch", height, width);
        if (options.IncludeProbabilities)
            g.Output(g.Node("Softmax", [full], "probabilities", Attr("axis", 1L)), SegmentationOnnxNames.Probabilities, "batch", c.NumClasses, height, width);
        if (options.ImageSizeOutput) ResizeToImage(g, classes, width, height);
        var metadata = new Dictionary<string, string>
        {
            ["maeml.task"] = "semantic_segmentation",
            ["maeml.image_size"] = e.ImageSize.ToString(),
            ["maeml.num_classes"] = c.NumClasses.ToString(),
            ["maeml.head"] = c.Head.ToString(),
            ["maeml.preprocessing"] = "(x/255 - ImageNet mean)/std",
        };
        if (!e.IsSquare) metadata["maeml.image_height"] = height.ToString();   // maeml.image_size is then the width
        if (options.ImageSizeOutput)
            metadata["maeml.image_class_map"] = $"{SegmentationOnnxNames.ImageClassMap}: class ids at the size {SegmentationOnnxNames.ImageSize} gives (width, height of the first row), nearest source pixel floor((2i+1)S/2n)";
        if (options.ClassNames is { } names)
        {
            if (names.Count != c.NumClasses) throw new ArgumentException($"{names.Count} class names for a model of {c.NumClasses} classes");
            metadata["maeml.class_names"] = System.Text.Json.JsonSerializer.Serialize(names);
        }
        return w.Finish(metadata, $"MAE ViT {e.EmbedDim}x{e.Depth} + {c.Head} segmentation head, {c.NumClasses} classes, input {width}x{height}");
    }

    /// <summary>Bilinear resizing of a map from <paramref name="from"/> to <paramref name="to"/> as TorchSharp's <c>interpolate(x, size)</c>: by a whole
    /// factor when both sides scale by it (every square export so far), else to the explicit size (a 0.5 level of an odd grid side).</summary>
    static string Resize(DenseOnnxWriter w, string x, string name, (int Height, int Width) from, (int Height, int Width) to)
    {
        int f = from.Height > 0 ? to.Height / from.Height : 0;
        return f * from.Height == to.Height && f * from.Width == to.Width ? w.Upsample(x, name, f) : w.ResizeTo(x, name, to.Height, to.Width);
    }

    /// <summary>The class map [N, H, W] (int64, <paramref name="width"/> x <paramref name="height"/>) resized to the width and height of the first row of
    /// <see cref="SegmentationOnnxNames.ImageSize"/> with <see cref="NearestResize"/>'s integer indices (two Gathers), as uint32.</summary>
    static void ResizeToImage(OnnxGraphBuilder g, string classes, int width, int height)
    {
        var imageSize = g.Input(SegmentationOnnxNames.ImageSize, "batch", 2);
        var first = g.Node("Gather", [imageSize, g.Int64s("resize_row_0", [0], scalar: true)], "resize_first_size", Attr("axis", 0L));   // [2] float
        var wh = g.Node("Cast", [g.Node("Floor", [first], "resize_size_floor")], "resize_size", Attr("to", 7L));                          // [2] int64
        string Indices(long axis, string name)
        {
            int size = axis == 0 ? width : height;   // source pixels along this axis
            var n = g.Node("Gather", [wh, g.Int64s($"{name}_which", [axis], scalar: true)], $"{name}_count", Attr("axis", 0L));           // scalar
            var i = g.Node("Range", [g.Int64s($"{name}_zero", [0], scalar: true), n, g.Int64s($"{name}_one", [1], scalar: true)], $"{name}_range");
            var centre = g.Node("Add", [g.Node("Mul", [i, g.Int64s($"{name}_2", [2], scalar: true)], $"{name}_times2"), g.Int64s($"{name}_1", [1], scalar: true)], $"{name}_2i1");
            var scaled = g.Node("Mul", [centre, g.Int64s($"{name}_s", [size], scalar: true)], $"{name}_scaled");
            var twice = g.Node("Mul", [n, g.Int64s($"{name}_2n", [2], scalar: true)], $"{name}_twice_n");
            return g.Node("Div", [scaled, twice], $"{name}_source");                                                                  // floor: all non-negative
        }
        var rows = g.Node("Gather", [classes, Indices(1, "resize_y")], "image_class_rows", Attr("axis", 1L));                         // [N, image H, W]
        var map = g.Node("Gather", [rows, Indices(0, "resize_x")], "image_class_map_int64", Attr("axis", 2L));                       // [N, image H, image W]
        g.Output(g.Node("Cast", [map], "image_class_map", Attr("to", 12L)), SegmentationOnnxNames.ImageClassMap, TensorProto.Types.DataType.Uint32, "batch", "height", "width");
    }
}
