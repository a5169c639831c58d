using MaeMl.Onnx;
using Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>Input and output names of an exported detector.</summary>
public static class DetectionOnnxNames
{
    /// <summary>Input: [N, 3, S, S] RGB planes 0..255 (each image stretched to S x S).</summary>
    public const string Pixels = EncoderOnnxNames.Pixels;
    /// <summary>Input: [N, 2] float width and height of each original image, in pixels (S, S gives boxes in model pixels).</summary>
    public const string ImageSize = "det_image_size";
    /// <summary>[N, M, 4] float x0, y0, x1, y1 of the kept boxes in pixels of the original image, best first; M is the largest
    /// count in the batch, the rest of a row is padding (zeros).</summary>
    public const string Boxes = "det_boxes";
    /// <summary>[N, M] float scores (padding 0).</summary>
    public const string Scores = "det_scores";
    /// <summary>[N, M] int64 class indices (padding -1).</summary>
    public const string Labels = "det_labels";
    /// <summary>[N] int64 number of kept boxes of each image.</summary>
    public const string Count = "det_count";
    /// <summary>[N, A, 4] decoded boxes of every location in model pixels, before NMS.</summary>
    public const string RawBoxes = "det_raw_boxes";
    /// <summary>[N, K, A] scores of every location and class, before NMS.</summary>
    public const string RawScores = "det_raw_scores";
}

/// <summary>
/// Exports a <see cref="DetectionModel"/> to ONNX with its post-processing, step for step that of <see cref="FcosPostprocess"/>:
/// preprocessing and ViT, simple feature pyramid, FCOS head on every level, score = sqrt(sigmoid(class) x sigmoid(centerness)),
/// boxes = location -/+ distances clipped to the S x S input; the best <see cref="DetectionConfig.PreNmsTopK"/> (location, class)
/// scores of each image (<c>TopK</c>, all classes together), ONNX <c>NonMaxSuppression</c> per class over them (score threshold,
/// IoU threshold), then the best <see cref="DetectionConfig.MaxDetections"/> kept boxes of each image (<c>TopK</c> again, all
/// classes together), scaled from model pixels to the original image by <see cref="DetectionOnnxNames.ImageSize"/> / S.
/// Outputs carry a batch dimension and a dynamic detection dimension, so ML.NET's <c>ApplyOnnxModel</c> (one row at a time)
/// sees variable-size vectors. Batch is dynamic; opset 17.
/// </summary>
public static class DetectionOnnxExporter
{
    /// <summary>Builds the graph (<see cref="Build"/>) and writes it to <paramref name="path"/> atomically.</summary>
    public static ModelProto Export(DetectionModel model, string path, IReadOnlyList<string>? classNames = null)
    {
        var onnx = Build(model, classNames);
        VitEncoderOnnxExporter.Save(onnx, path);
        return onnx;
    }

    /// <summary>The detector's graph in memory, with <c>maeml.*</c> metadata (task, image size, classes, post-processing settings
    /// and, when given, <c>maeml.class_names</c> as a JSON array).</summary>
    public static ModelProto Build(DetectionModel model, IReadOnlyList<string>? classNames = null)
    {
        var c = model.Config;
        var e = c.Encoder;
        var w = new DenseOnnxWriter(model.state_dict(), "backbone.net.", e, attention: c.Attention);
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

        var imageSize = g.Input(DetectionOnnxNames.ImageSize, "batch", 2);
        Postprocess(g, boxes, scores, imageSize, c, a, e.ImageSize);
        g.Output(boxes, DetectionOnnxNames.RawBoxes, "batch", a, 4);
        g.Output(scores, DetectionOnnxNames.RawScores, "batch", c.NumClasses, a);
        var metadata = new Dictionary<string, string>
        {
            ["maeml.task"] = "object_detection",
            ["maeml.image_size"] = e.ImageSize.ToString(),
            ["maeml.num_classes"] = c.NumClasses.ToString(),
            ["maeml.head"] = "FCOS",
            ["maeml.box_format"] = "x0,y0,x1,y1 in pixels of the original image (det_image_size); the input is the image stretched to SxS",
            ["maeml.score_threshold"] = c.ScoreThreshold.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["maeml.nms_iou"] = c.NmsIoU.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["maeml.pre_nms_top_k"] = c.PreNmsTopK.ToString(),
            ["maeml.max_detections"] = c.MaxDetections.ToString(),
            ["maeml.preprocessing"] = "(x/255 - ImageNet mean)/std",
        };
        if (classNames is not null)
        {
            if (classNames.Count != c.NumClasses) throw new ArgumentException($"{classNames.Count} class names for a detector of {c.NumClasses} classes");
            metadata["maeml.class_names"] = System.Text.Json.JsonSerializer.Serialize(classNames);
        }
        return w.Finish(metadata, $"MAE ViT {e.EmbedDim}x{e.Depth} + simple feature pyramid + FCOS, {c.NumClasses} classes, input {e.ImageSize}x{e.ImageSize}, NMS IoU {c.NmsIoU}, at most {c.MaxDetections} boxes an image");
    }

    /// <summary>The selection of <see cref="FcosPostprocess.Select"/> on boxes [N, A, 4] (model pixels) and scores [N, K, A]:
    /// declares the outputs <see cref="DetectionOnnxNames.Boxes"/>, <see cref="DetectionOnnxNames.Scores"/>,
    /// <see cref="DetectionOnnxNames.Labels"/> and <see cref="DetectionOnnxNames.Count"/>.</summary>
    static void Postprocess(OnnxGraphBuilder g, string boxes, string scores, string imageSize, DetectionConfig c, int a, int size)
    {
        int k = c.NumClasses;
        long candidates = Math.Min(c.PreNmsTopK, (long)a * k), keep = Math.Min(c.MaxDetections, candidates);
        string Unsqueeze(string x, long axis, string name) => g.Node("Unsqueeze", [x, g.Int64s($"{name}_axis", [axis])], name);
        string Column(string x, long i, string name) => g.Node("Gather", [x, g.Int64s($"{name}_column", [i], scalar: true)], name, Attr("axis", 1L));

        // the best candidates of each image: location-major flat index = location * K + class, as FcosPostprocess.Select
        var flat = g.Node("Reshape", [g.Node("Transpose", [scores], "scores_by_location", Ints("perm", 0, 2, 1)), g.Int64s("shape_n_ak", [0, -1])], "scores_flat");
        var top = g.Node("TopK", [flat, g.Int64s("pre_nms_top_k", [candidates])], ["candidate_scores", "candidate_index"], Attr("axis", 1L), Attr("largest", 1L), Attr("sorted", 1L));
        var (candScores, candIndex) = (top[0], top[1]);                                                                        // [N, T]
        var candClass = g.Node("Mod", [candIndex, g.Int64s("k_mod", [k], scalar: true)], "candidate_class");
        var candLocation = g.Node("Div", [candIndex, g.Int64s("k_div", [k], scalar: true)], "candidate_location");
        var candBoxes = g.Node("GatherND", [boxes, Unsqueeze(candLocation, -1, "candidate_location_nd")], "candidate_boxes", Attr("batch_dims", 1L));   // [N, T, 4]

        // class-wise NMS: each candidate scores in its own class row, -1 (below any threshold) in the others
        var classIds = g.Node("Reshape", [g.Int64s("class_ids", Enumerable.Range(0, k).Select(i => (long)i).ToArray()), g.Int64s("shape_1k1", [1, k, 1])], "class_ids_1k1");
        var own = g.Node("Equal", [Unsqueeze(candClass, 1, "candidate_class_n1t"), classIds], "candidate_in_class");               // [N, K, T]
        var nmsScores = g.Node("Where", [own, Unsqueeze(candScores, 1, "candidate_scores_n1t"), g.Scalar("other_class_score", -1f)], "nms_scores");
        var selected = g.Node("NonMaxSuppression", [candBoxes, nmsScores, g.Int64s("max_per_class", [keep]),
            g.Initializer("iou_threshold", new[] { c.NmsIoU }, 1), g.Initializer("score_threshold", new[] { c.ScoreThreshold }, 1)], "selected", Attr("center_point_box", 0L));   // [M, 3]: batch, class, candidate

        // kept[n, t] = 1 for the selected candidates, then the best `keep` of them per image, all classes together
        var batchAndCandidate = g.Node("Gather", [selected, g.Int64s("columns_0_2", [0, 2])], "selected_batch_candidate", Attr("axis", 1L));
        var zeros = g.Node("Expand", [g.Scalar("zero", 0f), g.Node("Shape", [candScores], "candidate_shape")], "zeros_nt");
        var ones = g.Node("Expand", [g.Scalar("one", 1f), g.Node("Shape", [Column(selected, 0, "selected_batch")], "selected_shape")], "ones_m");
        var kept = g.Node("ScatterND", [zeros, batchAndCandidate, ones], "kept");                                                 // [N, T]
        var keptScores = g.Node("Where", [g.Node("Cast", [kept], "kept_bool", Attr("to", 9L)), candScores, g.Scalar("not_kept_score", -1f)], "kept_scores");
        var best = g.Node("TopK", [keptScores, g.Int64s("max_detections", [keep])], ["best_scores", "best_candidate"], Attr("axis", 1L), Attr("largest", 1L), Attr("sorted", 1L));
        var valid = g.Node("GatherElements", [kept, best[1]], "best_valid", Attr("axis", 1L));                                      // [N, D] 1 or 0
        var count = g.Node("Cast", [g.Node("ReduceSum", [valid, g.Int64s("axis_1", [1])], "count_float", Attr("keepdims", 0L))], "count", Attr("to", 7L));   // [N]
        var maxCount = g.Node("ReduceMax", [count], "max_count", Attr("keepdims", 1L));                                          // [1]
        string Head(string x, string name) => g.Node("Slice", [x, g.Int64s($"{name}_start", [0]), maxCount, g.Int64s($"{name}_axes", [1])], name);
        var isValid = g.Node("Cast", [Head(valid, "valid_head")], "valid_bool", Attr("to", 9L));                                  // [N, M]
        var position = Head(best[1], "best_head");
        var outScores = g.Node("Where", [isValid, Head(best[0], "scores_head"), g.Scalar("pad_score", 0f)], "out_scores");
        var outLabels = g.Node("Where", [isValid, g.Node("GatherElements", [candClass, position], "best_class", Attr("axis", 1L)), g.Int64s("pad_label", [-1], scalar: true)], "out_labels");
        var outBoxes = g.Node("GatherND", [candBoxes, Unsqueeze(position, -1, "best_nd")], "best_boxes", Attr("batch_dims", 1L));   // [N, M, 4] model pixels

        // model pixels -> original pixels: x * width / S, y * height / S
        var scale = g.Node("Div", [imageSize, g.Scalar("model_size", size)], "image_scale");                                      // [N, 2]
        var scale4 = Unsqueeze(g.Node("Concat", [scale, scale], "image_scale_xyxy", Attr("axis", 1L)), 1, "image_scale_n14");
        outBoxes = g.Node("Where", [Unsqueeze(isValid, -1, "valid_n_m_1"), g.Node("Mul", [outBoxes, scale4], "boxes_original"), g.Scalar("pad_box", 0f)], "out_boxes");

        g.Output(outBoxes, DetectionOnnxNames.Boxes, "batch", "detections", 4);
        g.Output(outScores, DetectionOnnxNames.Scores, "batch", "detections");
        g.Output(outLabels, DetectionOnnxNames.Labels, TensorProto.Types.DataType.Int64, "batch", "detections");
        g.Output(count, DetectionOnnxNames.Count, TensorProto.Types.DataType.Int64, "batch");
    }
}
