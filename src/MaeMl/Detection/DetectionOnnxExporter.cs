using MaeMl.Heads;
using MaeMl.Onnx;
using Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>Input and output names of an exported detector.</summary>
public static class DetectionOnnxNames
{
    /// <summary>Input: [N, 3, S, S] RGB planes 0..255.</summary>
    public const string Pixels = EncoderOnnxNames.Pixels;
    /// <summary>[M, 4] float x0, y0, x1, y1 in model pixels (the S x S input) of the kept boxes, all images of the batch.</summary>
    public const string Boxes = "det_boxes";
    /// <summary>[M] float scores.</summary>
    public const string Scores = "det_scores";
    /// <summary>[M] int64 class indices.</summary>
    public const string Labels = "det_labels";
    /// <summary>[M] int64 image index in the batch of each box.</summary>
    public const string BatchIndex = "det_batch_index";
    /// <summary>[N, A, 4] decoded boxes of every location, before NMS.</summary>
    public const string RawBoxes = "det_raw_boxes";
    /// <summary>[N, K, A] scores of every location and class, before NMS.</summary>
    public const string RawScores = "det_raw_scores";
}

/// <summary>
/// Exports a <see cref="DetectionModel"/> to ONNX with its post-processing: preprocessing and ViT, simple feature pyramid,
/// FCOS head on every level, score = sqrt(sigmoid(class) x sigmoid(centerness)), boxes = location -/+ distances clipped to
/// the image, then ONNX <c>NonMaxSuppression</c> per class (score threshold, IoU threshold, at most
/// <see cref="DetectionConfig.MaxDetections"/> boxes per class and image). Unlike <see cref="FcosPostprocess"/> there is no
/// pre-NMS top-K nor a cap across classes. Batch is dynamic; opset 17.
/// </summary>
public static class DetectionOnnxExporter
{
    public static ModelProto Export(DetectionModel model, string path)
    {
        var c = model.Config;
        var e = c.Encoder;
        var w = new DenseOnnxWriter(model.state_dict(), "backbone.net.", e);
        var g = w.G;
        var levels = w.Pyramid(w.FeatureMap(), "backbone.", c.Scales, model.Strides);
        float[] scales;
        using (var s = model.state_dict()["head.scales"].detach().cpu()) scales = s.data<float>().ToArray();
        var cls = new List<string>(); var reg = new List<string>(); var ctr = new List<string>();
        int groups = Math.Min(32, c.PyramidChannels / 2);
        for (int l = 0; l < levels.Length; l++)
        {
            string Tower(string name)
            {
                var x = levels[l];
                for (int i = 0; i < c.HeadConvs; i++)
                {
                    x = w.Conv(x, $"head.{name}.{3 * i}", padding: 1);
                    x = w.GroupNorm(x, $"head.{name}.{3 * i + 1}", groups, c.PyramidChannels);
                    x = g.Node("Relu", [x], $"head.{name}.{3 * i + 2}.l{l}");
                }
                return x;
            }
            var ct = Tower("cls_tower");
            var bt = Tower("bbox_tower");
            cls.Add(g.Node("Reshape", [w.Conv(ct, "head.cls_logits", padding: 1), g.Int64s($"shape_nk_{l}", [0, c.NumClasses, -1])], $"cls_flat_{l}"));
            var d = g.Node("Mul", [w.Conv(bt, "head.bbox_pred", padding: 1), g.Scalar($"level_scale_{l}", scales[l])], $"bbox_scaled_{l}");
            d = g.Node("Exp", [g.Node("Min", [d, g.Scalar($"exp_max_{l}", 10f)], $"bbox_clamped_{l}")], $"bbox_exp_{l}");
            d = g.Node("Mul", [d, g.Scalar($"stride_{l}", model.Strides[l])], $"distances_{l}");
            reg.Add(g.Node("Reshape", [d, g.Int64s($"shape_n4_{l}", [0, 4, -1])], $"distances_flat_{l}"));
            ctr.Add(g.Node("Reshape", [w.Conv(bt, "head.centerness", padding: 1), g.Int64s($"shape_n1_{l}", [0, 1, -1])], $"centerness_flat_{l}"));
        }
        var logits = g.Node("Concat", cls.ToArray(), "class_logits", Attr("axis", 2L));           // [N, K, A]
        var dist = g.Node("Concat", reg.ToArray(), "distances", Attr("axis", 2L));               // [N, 4, A]
        var centerness = g.Node("Concat", ctr.ToArray(), "centerness", Attr("axis", 2L));        // [N, 1, A]
        var scores = g.Node("Sqrt", [g.Node("Mul", [g.Node("Sigmoid", [logits], "class_prob"), g.Node("Sigmoid", [centerness], "centerness_prob")], "score_product")], "scores");

        var (xs, ys, _) = model.Locations;
        int a = xs.Length;
        var loc = new float[4 * a];
        xs.CopyTo(loc, 0); ys.CopyTo(loc, a); xs.CopyTo(loc, 2 * a); ys.CopyTo(loc, 3 * a);
        var signed = g.Node("Mul", [dist, g.Initializer("box_signs", new[] { -1f, -1f, 1f, 1f }, 4, 1)], "signed_distances");
        var corners = g.Node("Add", [signed, g.Initializer("locations", loc, 4, a)], "corners");
        corners = g.Node("Clip", [corners, g.Scalar("zero", 0f), g.Scalar("image_size", e.ImageSize)], "corners_clipped");
        var boxes = g.Node("Transpose", [corners], "boxes", Ints("perm", 0, 2, 1));                // [N, A, 4]

        var selected = g.Node("NonMaxSuppression", [boxes, scores, g.Int64s("max_per_class", [c.MaxDetections]),
            g.Initializer("iou_threshold", new[] { c.NmsIoU }, 1), g.Initializer("score_threshold", new[] { c.ScoreThreshold }, 1)], "selected", Attr("center_point_box", 0L));
        string Column(int i) => g.Node("Gather", [selected, g.Int64s($"column_{i}", [i], scalar: true)], $"selected_{i}", Attr("axis", 1L));
        var (b, k, idx) = (Column(0), Column(1), Column(2));
        var count = g.Int64s("num_locations", [a], scalar: true);
        var flatBox = g.Node("Add", [g.Node("Mul", [b, count], "b_times_a"), idx], "box_index");
        var keptBoxes = g.Node("Gather", [g.Node("Reshape", [boxes, g.Int64s("shape_boxes_flat", [-1, 4])], "boxes_flat"), flatBox], "kept_boxes", Attr("axis", 0L));
        var classes = g.Int64s("num_classes", [c.NumClasses], scalar: true);
        var flatScore = g.Node("Add", [g.Node("Mul", [g.Node("Add", [g.Node("Mul", [b, classes], "b_times_k"), k], "bk"), count], "bk_times_a"), idx], "score_index");
        var keptScores = g.Node("Gather", [g.Node("Reshape", [scores, g.Int64s("shape_flat", [-1])], "scores_flat"), flatScore], "kept_scores", Attr("axis", 0L));

        g.Output(keptBoxes, DetectionOnnxNames.Boxes, "detections", 4);
        g.Output(keptScores, DetectionOnnxNames.Scores, "detections");
        g.Output(k, DetectionOnnxNames.Labels, TensorProto.Types.DataType.Int64, "detections");
        g.Output(b, DetectionOnnxNames.BatchIndex, TensorProto.Types.DataType.Int64, "detections");
        g.Output(boxes, DetectionOnnxNames.RawBoxes, "batch", a, 4);
        g.Output(scores, DetectionOnnxNames.RawScores, "batch", c.NumClasses, a);
        w.Save(path, new Dictionary<string, string>
        {
            ["maeml.task"] = "object_detection",
            ["maeml.image_size"] = e.ImageSize.ToString(),
            ["maeml.num_classes"] = c.NumClasses.ToString(),
            ["maeml.head"] = "FCOS",
            ["maeml.box_format"] = "x0,y0,x1,y1 in model pixels",
            ["maeml.preprocessing"] = "(x/255 - ImageNet mean)/std",
        }, $"MAE ViT {e.EmbedDim}x{e.Depth} + simple feature pyramid + FCOS, {c.NumClasses} classes, input {e.ImageSize}x{e.ImageSize}, NMS IoU {c.NmsIoU}");
        return w.Model;
    }
}
