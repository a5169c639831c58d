using MaeMl.Model;
using MaeMl.Onnx;
using Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;

namespace MaeMl.Segmentation;

/// <summary>Input and output names of an exported segmentation model.</summary>
public static class SegmentationOnnxNames
{
    /// <summary>Input: [N, 3, S, S] RGB planes 0..255 (what ML.NET's ExtractPixels gives).</summary>
    public const string Pixels = EncoderOnnxNames.Pixels;
    /// <summary>[N, S, S] int64 class id per pixel (ArgMax over the classes).</summary>
    public const string ClassMap = "seg_class_map";
    /// <summary>[N, K, S, S] float class probabilities (softmax), when exported.</summary>
    public const string Probabilities = "seg_probabilities";
}

/// <summary>
/// Exports a <see cref="SegmentationModel"/> to ONNX: preprocessing and ViT (as the encoder exporter), the head, bilinear
/// upsampling to the input size, ArgMax per pixel (and optionally Softmax probabilities). Batch is dynamic; opset 17.
/// </summary>
public static class SegmentationOnnxExporter
{
    /// <summary>Builds the graph from <paramref name="model"/>'s weights, writes it to <paramref name="path"/> atomically (with
    /// <c>maeml.*</c> metadata: task, image size, classes, head, preprocessing) and returns it. Outputs
    /// <see cref="SegmentationOnnxNames.ClassMap"/> and, with <paramref name="includeProbabilities"/>, <see cref="SegmentationOnnxNames.Probabilities"/>.</summary>
    public static ModelProto Export(SegmentationModel model, string path, bool includeProbabilities = false)
    {
        var c = model.Config;
        var e = c.Encoder;
        bool linear = c.Head == SegmentationHeadKind.Linear;
        var w = new DenseOnnxWriter(model.state_dict(), linear ? "backbone." : "backbone.net.", e);
        var g = w.G;
        var map = w.FeatureMap();
        string logits;
        int lowRes;
        if (linear)
        {
            logits = w.Conv(map, "head.0");
            lowRes = e.GridSize;
        }
        else
        {
            var strides = c.Scales.Select(s => (int)(e.PatchSize / s)).ToArray();
            var levels = w.Pyramid(map, "backbone.", c.Scales, strides);
            var x = levels[0];
            for (int i = 1; i < levels.Length; i++) x = g.Node("Add", [x, w.Upsample(levels[i], $"fuse_up_{i}", (float)strides[i] / strides[0])], $"fuse_{i}");
            x = w.Conv(x, "head.0", padding: 1);
            x = w.LayerNorm2d(x, "head.1");
            x = w.Gelu(x, "head.2");
            logits = w.Conv(x, "head.3");
            lowRes = e.ImageSize / strides[0];
        }
        var full = lowRes == e.ImageSize ? logits : w.Upsample(logits, "logits_upsampled", (float)e.ImageSize / lowRes);
        var classes = g.Node("ArgMax", [full], "class_map", Attr("axis", 1L), Attr("keepdims", 0L));
        g.Output(classes, SegmentationOnnxNames.ClassMap, TensorProto.Types.DataType.Int64, "batch", e.ImageSize, e.ImageSize);
        if (includeProbabilities)
            g.Output(g.Node("Softmax", [full], "probabilities", Attr("axis", 1L)), SegmentationOnnxNames.Probabilities, "batch", c.NumClasses, e.ImageSize, e.ImageSize);
        w.Save(path, new Dictionary<string, string>
        {
            ["maeml.task"] = "semantic_segmentation",
            ["maeml.image_size"] = e.ImageSize.ToString(),
            ["maeml.num_classes"] = c.NumClasses.ToString(),
            ["maeml.head"] = c.Head.ToString(),
            ["maeml.preprocessing"] = "(x/255 - ImageNet mean)/std",
        }, $"MAE ViT {e.EmbedDim}x{e.Depth} + {c.Head} segmentation head, {c.NumClasses} classes, input {e.ImageSize}x{e.ImageSize}");
        return w.Model;
    }
}
