using MaeMl.Detection;
using MaeMl.Segmentation;
using MaeMl.Visualization;

namespace MaeMl.Cli;

/// <summary>The result lines and pictures the train and eval commands of one task print alike.</summary>
public static class Reports
{
    /// <summary>The post-processing the AP is measured with (that of the exported ONNX model too).</summary>
    /// <summary>Loads MAE encoder weights into a dense backbone and says which of its tensors the weights did not have (ViTDet's
    /// relative position tables, which start at zero).</summary>
    public static void LoadEncoder(Model.VisionTransformer vit, IReadOnlyDictionary<string, TorchSharp.torch.Tensor> weights)
    {
        var copied = vit.LoadEncoder(weights).ToHashSet();
        var fresh = vit.named_parameters().Select(np => np.name).Where(n => !copied.Contains(n) && !n.StartsWith("head.") && !n.StartsWith("fc_norm.")).ToList();
        if (fresh.Count > 0) Console.WriteLine($"{fresh.Count} backbone tensors are not in the weights and keep their zero init (ViTDet relative positions): {fresh[0]}, ...");
    }

    public static string Describe(DetectionConfig c) =>
        FormattableString.Invariant($"detections: scores above {c.ScoreThreshold}, best {c.PreNmsTopK} candidates, class-wise NMS at IoU {c.NmsIoU}, at most {c.MaxDetections} an image");

    /// <summary>What the detections a picture draws (score >= <paramref name="minScore"/>) are: found objects, duplicates (the clusters), other false positives, misses.</summary>
    public static void DetectionBreakdown(IReadOnlyList<DetectedBox[]> predicted, DetectionDataset data, string split, float minScore = 0.3f)
    {
        var b = DetectionMetrics.Breakdown(predicted, data.Boxes, minScore);
        Console.WriteLine(FormattableString.Invariant($"{split} at score >= {b.MinScore}: {b.Detections} detections = {b.TruePositives} true positives (IoU 0.5) + {b.Duplicates} duplicates on found objects + {b.OtherFalsePositives} other false positives; {b.Missed} of {data.Boxes.Sum(x => x.Length)} objects missed"));
    }

    public static void Detection(DetectionEvaluation e, string split, IReadOnlyList<string> names)
    {
        Console.WriteLine($"{split}: mAP@[.5:.95] {e.MAP:F4}, AP50 {e.AP50:F4}, AP75 {e.AP75:F4} ({e.GroundTruthBoxes} boxes, {e.Detections} detections)");
        var per = Enumerable.Range(0, e.PerClassAP.Length).Where(c => !double.IsNaN(e.PerClassAP[c])).OrderByDescending(c => e.PerClassAP[c]).Take(8)
            .Select(c => $"{(c < names.Count ? names[c] : c.ToString())} {e.PerClassAP[c]:F3}");
        Console.WriteLine($"  AP by class (best): {string.Join(", ", per)}");
    }

    public static void Segmentation(SegmentationMetrics m, string split, IReadOnlyList<string> names)
    {
        Console.WriteLine($"{split}: mIoU {m.MeanIoU:P2}, pixel accuracy {m.PixelAccuracy:P2} ({m.Pixels} labelled pixels)");
        if (names.Count == 0) return;
        var iou = m.PerClassIoU();
        var present = Enumerable.Range(0, iou.Length).Where(c => !double.IsNaN(iou[c])).ToList();
        string Name(int c) => $"{(c < names.Count ? names[c] : c.ToString())} {iou[c]:P1}";
        if (iou.Length <= 20) Console.WriteLine($"  per class: {string.Join(", ", present.Select(Name))}");
        else Console.WriteLine($"  best classes: {string.Join(", ", present.OrderByDescending(c => iou[c]).Take(10).Select(Name))}");
    }

    /// <summary>The same report against the masks at their files' own size (logits resized to each mask), when the model's input size is
    /// not the first mask's size (CamVid 160x120 trained at 112x84); nothing when they are the same (the numbers would repeat).</summary>
    public static void SegmentationAtMaskSize(SegmentationModel model, SegmentationDataset data, string split, IReadOnlyList<string> names)
    {
        if (data.MaskPaths is not { Count: > 0 } masks || MaeMl.Data.ImageDecoder.ReadSize(masks[0]) == (data.ImageSize.Width, data.ImageSize.Height)) return;
        Segmentation(SegmentationTrainer.EvaluateAtMaskSize(model, data), $"{split} at the masks' own size", names);
    }

    /// <summary>True (left) and predicted (right) boxes of the first <paramref name="count"/> images.</summary>
    public static void DrawBoxes(DetectionModel model, DetectionDataset data, string path, DetectionResize resize, int count = 6)
    {
        int n = Math.Min(count, data.Count);
        using var head = data.Head(n);
        var predicted = DetectionTrainer.Predict(model, head);
        DetectionPicture.Boxes(path, data.ImagePaths.Take(n).ToList(), model.Config.Encoder.ImageSize, data.Boxes.Take(n).ToList(), predicted, data.ClassNames, resize);
        Console.WriteLine($"wrote {path}");
    }

    /// <summary>Image, true mask and predicted mask of the first <paramref name="count"/> images; the legend names the classes by
    /// <paramref name="classNames"/> (else "class N").</summary>
    public static void DrawMasks(SegmentationModel model, SegmentationDataset data, string path, IReadOnlyList<string>? classNames = null, int count = 6)
    {
        int n = Math.Min(count, data.Count);
        var (images, labels) = data.Head(n);
        using var _i = images;
        using var _l = labels;
        using var predicted = SegmentationTrainer.Predict(model, images);
        int plane = model.Config.Encoder.InputSize.Pixels;
        var pred = predicted.data<long>().ToArray();
        var truth = labels.contiguous().data<long>().ToArray();
        DensePredictionPicture.Masks(path, data.ImagePaths.Take(n).ToList(), model.Config.Encoder.InputSize,
            Enumerable.Range(0, n).Select(i => truth[(i * plane)..((i + 1) * plane)]).ToList(),
            Enumerable.Range(0, n).Select(i => pred[(i * plane)..((i + 1) * plane)]).ToList(), data.IgnoreIndex, classNames: classNames);
        Console.WriteLine($"wrote {path}");
    }
}
