using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>
/// FCOS training targets and loss: a location is positive for the smallest box that contains it, lies within
/// <see cref="DetectionConfig.CenterSampleRadius"/> strides of the box centre, and whose largest side distance falls in the
/// location's level range (8 x stride upper bounds, the finest level from 0 and the coarsest without limit). Loss = sigmoid
/// focal loss (alpha 0.25, gamma 2) over all locations / positives + GIoU loss weighted by the centerness target +
/// centerness BCE / positives. The focal and GIoU losses are TorchVision's (<c>torchvision.ops.sigmoid_focal_loss</c>,
/// <c>torchvision.ops.generalized_box_iou_loss</c>), the reference implementations; they replaced hand-written copies that
/// gave the same losses (largest differences: 1.6e-7 relative elementwise for the focal loss and 0 for its sum, 6e-8 for
/// the GIoU loss of boxes of a square pixel or more). TorchVision builds its constants as temporary <see cref="Scalar"/>s
/// inside these two calls (README, "TorchSharp temporary scalars"); the arithmetic here uses cached ones.
/// </summary>
public static class FcosLoss
{
    static readonly Scalar Zero = 0.ToScalar(), One = 1.ToScalar(), Eps = 1e-6.ToScalar();

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
        using var numPos = Math.Max(1, positives.Count).ToScalar();
        var clsLoss = torchvision.ops.sigmoid_focal_loss(output.ClassLogits, target, alpha: 0.25, gamma: 2, reduction: nn.Reduction.Sum).div(numPos);
        if (positives.Count == 0) return clsLoss.add(output.Distances.sum(), Zero).add(output.Centerness.sum(), Zero).MoveToOuterDisposeScope();

        var index = tensor(positives.ToArray(), device: device);
        var pred = output.Distances.reshape(-1, 4).index_select(0, index);
        var tgt = tensor(distances, device: device).reshape(-1, 4).index_select(0, index);
        var ctrTarget = Centerness(tgt);
        var boxLoss = GeneralizedIoULoss(pred, tgt).mul(ctrTarget).sum().div(ctrTarget.sum().clamp_min(Eps));
        var ctrLoss = nn.functional.binary_cross_entropy_with_logits(output.Centerness.reshape(-1).index_select(0, index), ctrTarget, reduction: nn.Reduction.Sum).div(numPos);
        return clsLoss.add(boxLoss, One).add(ctrLoss, One).MoveToOuterDisposeScope();
    }

    /// <summary>sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of distances [P, 4].</summary>
    public static Tensor Centerness(Tensor ltrb)
    {
        using var scope = NewDisposeScope();
        var lr = ltrb[.., TensorIndex.Tensor(tensor(new long[] { 0, 2 }))];
        var tb = ltrb[.., TensorIndex.Tensor(tensor(new long[] { 1, 3 }))];
        var c = lr.min(1).values / lr.max(1).values * (tb.min(1).values / tb.max(1).values);
        return c.clamp_min(Zero).sqrt().MoveToOuterDisposeScope();
    }

    /// <summary>GIoU of boxes given as distances [P, 4] (l, t, r, b) from the same points: 1 - <see cref="GeneralizedIoULoss"/>.</summary>
    public static Tensor GeneralizedIoU(Tensor pred, Tensor target)
    {
        using var scope = NewDisposeScope();
        return GeneralizedIoULoss(pred, target).neg().add(One, One).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// GIoU loss 1 - GIoU [P] of boxes given as distances [P, 4] (l, t, r, b) from the same points: TorchVision's
    /// <c>generalized_box_iou_loss</c> of the corner boxes (-l, -t, r, b). TorchVision adds 1e-7 to the union and the
    /// enclosing area where the hand-written version clamped them at 1e-6: the same loss (within float rounding) for boxes of
    /// a square pixel or more, about 1e-7 / union apart for smaller ones.
    /// </summary>
    internal static Tensor GeneralizedIoULoss(Tensor pred, Tensor target)
    {
        using var scope = NewDisposeScope();
        var sign = tensor(new float[] { -1, -1, 1, 1 }, device: pred.device);
        return torchvision.ops.generalized_box_iou_loss(pred.mul(sign), target.mul(sign)).MoveToOuterDisposeScope();
    }
}
