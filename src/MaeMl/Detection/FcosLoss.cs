using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>
/// FCOS training targets and loss: a location is positive for the smallest box that contains it, lies within
/// <see cref="DetectionConfig.CenterSampleRadius"/> strides of the box centre, and whose largest side distance falls in the
/// location's level range (8 x stride upper bounds, the finest level from 0 and the coarsest without limit). Loss = sigmoid
/// focal loss (alpha 0.25, gamma 2) over all locations / positives + GIoU loss weighted by the centerness target +
/// centerness BCE / positives.
/// </summary>
public static class FcosLoss
{
    /// <summary>Per-location targets of one batch: class index (-1 = background) and left/top/right/bottom distances.</summary>
    public static (int[] Labels, float[] Distances) Targets(DetectionModel model, IReadOnlyList<BoxAnnotation[]> boxes)
    {
        var (xs, ys, level) = model.Locations;
        var strides = model.Strides;
        int a = xs.Length;
        var labels = new int[boxes.Count * a];
        var distances = new float[boxes.Count * a * 4];
        Array.Fill(labels, -1);
        float radius = model.Config.CenterSampleRadius;
        for (int n = 0; n < boxes.Count; n++)
        for (int i = 0; i < a; i++)
        {
            int s = strides[level[i]];
            float lo = level[i] == 0 ? 0 : 8 * strides[level[i] - 1], hi = level[i] == strides.Length - 1 ? float.PositiveInfinity : 8 * s;
            float bestArea = float.PositiveInfinity;
            foreach (var b in boxes[n])
            {
                float l = xs[i] - b.X0, t = ys[i] - b.Y0, r = b.X1 - xs[i], bt = b.Y1 - ys[i];
                if (Math.Min(Math.Min(l, t), Math.Min(r, bt)) <= 0) continue;
                float cx = (b.X0 + b.X1) / 2, cy = (b.Y0 + b.Y1) / 2;
                if (Math.Abs(xs[i] - cx) >= radius * s || Math.Abs(ys[i] - cy) >= radius * s) continue;
                float m = Math.Max(Math.Max(l, t), Math.Max(r, bt));
                if (m < lo || m > hi || b.Area >= bestArea) continue;
                bestArea = b.Area;
                labels[n * a + i] = b.Label;
                int o = (n * a + i) * 4;
                (distances[o], distances[o + 1], distances[o + 2], distances[o + 3]) = (l, t, r, bt);
            }
        }
        return (labels, distances);
    }

    /// <summary>The scalar training loss of <paramref name="output"/> against the boxes of each image (model pixels).</summary>
    public static Tensor Compute(DetectionModel model, FcosOutput output, IReadOnlyList<BoxAnnotation[]> boxes)
    {
        using var scope = NewDisposeScope();
        var (labels, distances) = Targets(model, boxes);
        long n = output.ClassLogits.shape[0], a = output.ClassLogits.shape[1], k = output.ClassLogits.shape[2];
        var onehot = new float[n * a * k];
        var positives = new List<long>();
        for (long i = 0; i < labels.Length; i++)
            if (labels[i] >= 0) { onehot[i * k + labels[i]] = 1; positives.Add(i); }
        var device = output.ClassLogits.device;
        var target = tensor(onehot, device: device).reshape(n, a, k);
        float numPos = Math.Max(1, positives.Count);
        var logits = output.ClassLogits;
        var p = logits.sigmoid();
        var ce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction: nn.Reduction.None);
        var pt = p * target + (1 - p) * (1 - target);
        var alpha = target * 0.25 + (1 - target) * 0.75;
        var clsLoss = (alpha * ce * (1 - pt).square()).sum() / numPos;
        if (positives.Count == 0) return (clsLoss + output.Distances.sum() * 0 + output.Centerness.sum() * 0).MoveToOuterDisposeScope();

        var index = tensor(positives.ToArray(), device: device);
        var pred = output.Distances.reshape(-1, 4).index_select(0, index);
        var tgt = tensor(distances, device: device).reshape(-1, 4).index_select(0, index);
        var ctrTarget = Centerness(tgt);
        var giou = GeneralizedIoU(pred, tgt);
        var boxLoss = ((1 - giou) * ctrTarget).sum() / ctrTarget.sum().clamp_min(1e-6);
        var ctrLoss = nn.functional.binary_cross_entropy_with_logits(output.Centerness.reshape(-1).index_select(0, index), ctrTarget, reduction: nn.Reduction.Sum) / numPos;
        return (clsLoss + boxLoss + ctrLoss).MoveToOuterDisposeScope();
    }

    /// <summary>sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of distances [P, 4].</summary>
    public static Tensor Centerness(Tensor ltrb)
    {
        using var scope = NewDisposeScope();
        var lr = ltrb[.., TensorIndex.Tensor(tensor(new long[] { 0, 2 }))];
        var tb = ltrb[.., TensorIndex.Tensor(tensor(new long[] { 1, 3 }))];
        var c = lr.min(1).values / lr.max(1).values * (tb.min(1).values / tb.max(1).values);
        return c.clamp_min(0).sqrt().MoveToOuterDisposeScope();
    }

    /// <summary>GIoU of boxes given as distances [P, 4] (l, t, r, b) from the same points.</summary>
    public static Tensor GeneralizedIoU(Tensor pred, Tensor target)
    {
        using var scope = NewDisposeScope();
        var (pl, pt, pr, pb) = (pred[.., 0], pred[.., 1], pred[.., 2], pred[.., 3]);
        var (tl, tt, tr, tb) = (target[.., 0], target[.., 1], target[.., 2], target[.., 3]);
        var areaP = (pl + pr) * (pt + pb);
        var areaT = (tl + tr) * (tt + tb);
        var inter = (minimum(pl, tl) + minimum(pr, tr)) * (minimum(pt, tt) + minimum(pb, tb));
        var union = areaP + areaT - inter;
        var enclose = (maximum(pl, tl) + maximum(pr, tr)) * (maximum(pt, tt) + maximum(pb, tb));
        var iou = inter / union.clamp_min(1e-6);
        return (iou - (enclose - union) / enclose.clamp_min(1e-6)).MoveToOuterDisposeScope();
    }
}
