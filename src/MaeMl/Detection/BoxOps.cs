namespace MaeMl.Detection;

/// <summary>Box geometry and non-maximum suppression on the CPU. <see cref="Nms"/> decides as ONNX Runtime's
/// <c>NonMaxSuppression</c>, which the exported graph uses (same float IoU, suppression when IoU &gt; threshold, equal scores
/// in candidate order), so TorchSharp evaluation and the exported model keep the same boxes. TorchVision 0.107's
/// <c>torchvision.ops.nms</c> agrees on distinct scores but orders equal scores its own way (saturated sigmoids make ties
/// common), so it is not used.</summary>
internal static class BoxOps
{
    /// <summary>Intersection over union of two boxes (x0, y0, x1, y1); 0 when they do not overlap or the union is empty.</summary>
    /// <remarks>Not TorchVision's <c>torchvision.ops.box_iou</c>: that is a pairwise tensor op (N x M boxes), where NMS and
    /// <see cref="DetectionMetrics"/> compare one pair of boxes at a time on the CPU. The two give the same floats on boxes with
    /// a non-empty union (tests/MaeMl.Tests/Detection/TorchVisionOpsTests.cs: no difference over 6,059 pairs); for an empty
    /// union this returns 0, as ONNX Runtime's <c>NonMaxSuppression</c> does, where <c>box_iou</c> divides 0 by 0 (NaN).</remarks>
    public static float IoU(float ax0, float ay0, float ax1, float ay1, float bx0, float by0, float bx1, float by1)
    {
        float w = Math.Min(ax1, bx1) - Math.Max(ax0, bx0), h = Math.Min(ay1, by1) - Math.Max(ay0, by0);
        if (w <= 0 || h <= 0) return 0;
        float inter = w * h, union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter;
        return union <= 0 ? 0 : inter / union;
    }

    /// <summary>Intersection over union of a detection and a ground-truth box (0 when the union is empty).</summary>
    public static float IoU(DetectedBox a, BoxAnnotation b) => IoU(a.X0, a.Y0, a.X1, a.Y1, b.X0, b.Y0, b.X1, b.Y1);
    /// <summary>Intersection over union of two detections (0 when the union is empty).</summary>
    public static float IoU(DetectedBox a, DetectedBox b) => IoU(a.X0, a.Y0, a.X1, a.Y1, b.X0, b.Y0, b.X1, b.Y1);

    /// <summary>Class-wise greedy NMS: by descending score (equal scores in input order), drop boxes of the same class
    /// overlapping a kept one by more than <paramref name="iouThreshold"/>; at most <paramref name="maxKeep"/> boxes, highest
    /// score first.</summary>
    public static List<DetectedBox> Nms(IEnumerable<DetectedBox> boxes, float iouThreshold, int maxKeep = int.MaxValue)
    {
        var kept = new List<DetectedBox>();
        foreach (var box in boxes.OrderByDescending(b => b.Score))
        {
            if (kept.Count >= maxKeep) break;
            bool suppressed = false;
            foreach (var k in kept)
                if (k.Label == box.Label && IoU(k, box) > iouThreshold) { suppressed = true; break; }
            if (!suppressed) kept.Add(box);
        }
        return kept;
    }
}
