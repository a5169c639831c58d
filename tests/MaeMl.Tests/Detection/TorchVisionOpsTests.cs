using MaeMl.Detection;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>
/// TorchVision 0.107's <c>sigmoid_focal_loss</c>, <c>generalized_box_iou_loss</c> and <c>box_iou</c>, which MaeMl uses
/// (<see cref="FcosLoss"/>) or documents as equal (<see cref="BoxOps"/>), against independent reference formulas kept here: the
/// hand-written versions MaeMl had before it used TorchVision (FCOS focal loss with alpha 0.25 / gamma 2, GIoU of (l, t, r, b)
/// distances with the union and enclosing area clamped at 1e-6, the whole FCOS loss built from them) and a double-precision
/// GIoU of corner boxes, on random and edge-case inputs with fixed seeds. <see cref="BoxOps.IoU(float, float, float, float, float, float, float, float)"/>
/// stays MaeMl's own (NMS has to match ONNX Runtime), so <c>box_iou</c> is compared with it. Each test prints its largest absolute
/// and relative differences (run with <c>--logger "console;verbosity=detailed"</c>). The class shares the global-RNG
/// collection: <see cref="FcosLossComputeMatchesTheReferenceLossAndGradients"/> builds a model, which draws its initial weights.
/// </summary>
[Collection("TorchGlobalRng")]
public sealed class TorchVisionOpsTests(ITestOutputHelper output)
{
    static readonly Scalar One = 1.ToScalar(), Zero = 0.ToScalar(), Quarter = 0.25.ToScalar(), ThreeQuarters = 0.75.ToScalar(), Eps = 1e-6.ToScalar();

    // ---- reference formulas (MaeMl's own code before TorchVision, with cached scalars) ----

    /// <summary>Elementwise sigmoid focal loss, alpha 0.25, gamma 2: alpha_t x BCE x (1 - p_t)^2.</summary>
    static Tensor ReferenceFocal(Tensor logits, Tensor target)
    {
        var p = logits.sigmoid();
        var ce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction: nn.Reduction.None);
        var notTarget = target.neg().add(One, One);
        var pt = p.mul(target).add(p.neg().add(One, One).mul(notTarget), One);
        var alpha = target.mul(Quarter).add(notTarget.mul(ThreeQuarters), One);
        return alpha.mul(ce).mul(pt.neg().add(One, One).square());
    }

    /// <summary>GIoU of boxes given as distances [P, 4] (l, t, r, b) from the same points; union and enclosing area clamped at 1e-6.</summary>
    static Tensor ReferenceGIoU(Tensor pred, Tensor target)
    {
        var (pl, pt, pr, pb) = (pred[.., 0], pred[.., 1], pred[.., 2], pred[.., 3]);
        var (tl, tt, tr, tb) = (target[.., 0], target[.., 1], target[.., 2], target[.., 3]);
        var areaP = pl.add(pr, One).mul(pt.add(pb, One));
        var areaT = tl.add(tr, One).mul(tt.add(tb, One));
        var inter = minimum(pl, tl).add(minimum(pr, tr), One).mul(minimum(pt, tt).add(minimum(pb, tb), One));
        var union = areaP.add(areaT, One).sub(inter);
        var enclose = maximum(pl, tl).add(maximum(pr, tr), One).mul(maximum(pt, tt).add(maximum(pb, tb), One));
        var iou = inter.div(union.clamp_min(Eps));
        return iou.sub(enclose.sub(union).div(enclose.clamp_min(Eps)));
    }

    /// <summary>The FCOS loss as MaeMl computed it by hand: focal / positives + centerness-weighted (1 - GIoU) + centerness BCE / positives.</summary>
    static Tensor ReferenceLoss(DetectionModel model, FcosOutput output, IReadOnlyList<BoxAnnotation[]> boxes)
    {
        var (labels, distances) = FcosLoss.Targets(model, boxes);
        long n = output.ClassLogits.shape[0], a = output.ClassLogits.shape[1], k = output.ClassLogits.shape[2];
        var onehot = new float[n * a * k];
        var positives = new List<long>();
        for (long i = 0; i < labels.Length; i++)
            if (labels[i] >= 0) { onehot[i * k + labels[i]] = 1; positives.Add(i); }
        var target = tensor(onehot).reshape(n, a, k);
        using var numPos = ((double)Math.Max(1, positives.Count)).ToScalar();
        var clsLoss = ReferenceFocal(output.ClassLogits, target).sum().div(numPos);
        if (positives.Count == 0) return clsLoss.add(output.Distances.sum(), Zero).add(output.Centerness.sum(), Zero);
        var index = tensor(positives.ToArray());
        var pred = output.Distances.reshape(-1, 4).index_select(0, index);
        var tgt = tensor(distances).reshape(-1, 4).index_select(0, index);
        var lr = tgt[.., TensorIndex.Tensor(tensor(new long[] { 0, 2 }))];
        var tb = tgt[.., TensorIndex.Tensor(tensor(new long[] { 1, 3 }))];
        var ctrTarget = lr.min(1).values.div(lr.max(1).values).mul(tb.min(1).values.div(tb.max(1).values)).clamp_min(Zero).sqrt();
        var boxLoss = ReferenceGIoU(pred, tgt).neg().add(One, One).mul(ctrTarget).sum().div(ctrTarget.sum().clamp_min(Eps));
        var ctrLoss = nn.functional.binary_cross_entropy_with_logits(output.Centerness.reshape(-1).index_select(0, index), ctrTarget, reduction: nn.Reduction.Sum).div(numPos);
        return clsLoss.add(boxLoss, One).add(ctrLoss, One);
    }

    /// <summary>GIoU loss 1 - GIoU of corner boxes (x0, y0, x1, y1) in double precision.</summary>
    static double ReferenceGIoULoss(float[] a, float[] b)
    {
        double iw = Math.Max(0, Math.Min((double)a[2], b[2]) - Math.Max((double)a[0], b[0]));
        double ih = Math.Max(0, Math.Min((double)a[3], b[3]) - Math.Max((double)a[1], b[1]));
        double inter = iw * ih, union = ((double)a[2] - a[0]) * ((double)a[3] - a[1]) + ((double)b[2] - b[0]) * ((double)b[3] - b[1]) - inter;
        double enclose = (Math.Max((double)a[2], b[2]) - Math.Min((double)a[0], b[0])) * (Math.Max((double)a[3], b[3]) - Math.Min((double)a[1], b[1]));
        return 1 - (inter / union - (enclose - union) / enclose);
    }

    // ---- inputs ----

    static float[] Normal(Random rng, int count, double std)
    {
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(std * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return v;
    }

    /// <summary>Random corner boxes [count, 4] of 0.5..100 pixels in a 200 x 200 image.</summary>
    static float[] RandomBoxes(Random rng, int count)
    {
        var b = new float[count * 4];
        for (int i = 0; i < count; i++)
        {
            float x = (float)(rng.NextDouble() * 200), y = (float)(rng.NextDouble() * 200);
            float w = (float)(0.5 + rng.NextDouble() * 99.5), h = (float)(0.5 + rng.NextDouble() * 99.5);
            (b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]) = (x, y, x + w, y + h);
        }
        return b;
    }

    /// <summary>Edge-case pairs of corner boxes: identical, nested (both ways), disjoint, sharing an edge or a corner, crossing, thin, large.</summary>
    static (float[] A, float[] B) EdgeCaseBoxPairs()
    {
        float[][] pairs =
        [
            [10, 10, 50, 50, 10, 10, 50, 50],          // identical
            [0.25f, 0.5f, 3.75f, 7f, 0.25f, 0.5f, 3.75f, 7f],
            [10, 10, 50, 50, 20, 20, 30, 30],          // nested
            [20, 20, 30, 30, 10, 10, 50, 50],
            [10, 10, 50, 50, 10, 10, 50, 20],          // nested, sharing three sides
            [0, 0, 10, 10, 100, 100, 120, 110],        // disjoint, far apart
            [0, 0, 10, 10, 10, 0, 20, 10],             // sharing an edge
            [0, 0, 10, 10, 10, 10, 20, 20],            // sharing a corner
            [0, 0, 10, 10, 0, 10.5f, 10, 20],          // just apart
            [0, 4, 20, 6, 9, 0, 11, 20],               // crossing
            [0, 0, 1000, 0.01f, 0, 0, 0.01f, 1000],    // thin
            [0, 0, 10000, 10000, 5000, 5000, 15000, 15000],
        ];
        return (pairs.SelectMany(p => p[..4]).ToArray(), pairs.SelectMany(p => p[4..]).ToArray());
    }

    /// <summary>Distances (l, t, r, b) [count, 4]: log-normal around a stride of 8, 16 or 32.</summary>
    static float[] RandomDistances(Random rng, int count)
    {
        var d = Normal(rng, count * 4, 1.0);
        for (int i = 0; i < count; i++)
        {
            int stride = 8 << rng.Next(3);
            for (int j = 0; j < 4; j++) d[4 * i + j] = MathF.Exp(d[4 * i + j]) * stride;
        }
        return d;
    }

    static Tensor Corners(Tensor ltrb) => ltrb.mul(tensor(new float[] { -1, -1, 1, 1 }));

    // ---- comparison ----

    /// <summary>Largest |a - b| and |a - b| / |b| (where b is not 0) over the elements; NaN anywhere counts as infinite.</summary>
    static (double Abs, double Rel) Diff(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        double abs = 0, rel = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (double.IsNaN(d)) return (double.PositiveInfinity, double.PositiveInfinity);
            abs = Math.Max(abs, d);
            if (expected[i] != 0) rel = Math.Max(rel, d / Math.Abs(expected[i]));
            else if (d != 0) rel = double.PositiveInfinity;
        }
        return (abs, rel);
    }

    static double[] Values(Tensor t) => t.detach().to_type(ScalarType.Float64).cpu().data<double>().ToArray();

    /// <summary>Asserts |a - b| &lt;= rtol x |b| + atol elementwise and prints the largest differences.</summary>
    void AssertClose(string what, double[] actual, double[] expected, double rtol, double atol)
    {
        Assert.Equal(expected.Length, actual.Length);
        var (abs, rel) = Diff(actual, expected);
        output.WriteLine($"{what}: {actual.Length} values, max |diff| {abs:G3}, max relative diff {rel:G3}");
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= rtol * Math.Abs(expected[i]) + atol,
                $"{what}[{i}]: {actual[i]:R} vs {expected[i]:R}");
    }

    // ---- tests ----

    [Fact]
    public void SigmoidFocalLossMatchesTheReferenceFormula()
    {
        using var scope = NewDisposeScope();
        var rng = new Random(1);
        const int n = 2, a = 500, k = 5;
        var logits = Normal(rng, n * a * k, 4);
        var targets = new float[n * a * k];
        float[] large = [15, 30, 60, 100, 1e3f, 1e4f];
        for (int i = 0; i < logits.Length; i++)
        {
            if (rng.NextDouble() < 0.1) logits[i] = large[rng.Next(large.Length)] * (rng.Next(2) == 0 ? -1 : 1);
            else if (rng.NextDouble() < 0.01) logits[i] = 0;
        }
        for (int loc = 0; loc < n * a; loc++)
            if (rng.NextDouble() < 0.15) targets[loc * k + rng.Next(k)] = 1;
        var x = tensor(logits).reshape(n, a, k);
        var t = tensor(targets).reshape(n, a, k);

        var expected = ReferenceFocal(x, t);
        // atol 1e-37: the tiniest losses of easy negatives are subnormal floats, with fewer significant bits
        AssertClose("sigmoid_focal_loss, elementwise", Values(torchvision.ops.sigmoid_focal_loss(x, t, alpha: 0.25, gamma: 2)), Values(expected), 1e-6, 1e-37);
        AssertClose("sigmoid_focal_loss, sum", Values(torchvision.ops.sigmoid_focal_loss(x, t, alpha: 0.25, gamma: 2, reduction: nn.Reduction.Sum)), Values(expected.sum()), 1e-6, 0);
    }

    [Fact]
    public void GeneralizedIoULossOfDistancesMatchesTheReferenceFormula()
    {
        using var scope = NewDisposeScope();
        var rng = new Random(2);
        var pred = RandomDistances(rng, 2000).ToList();
        var tgt = RandomDistances(rng, 2000).ToList();
        void Add(float[] p, float[] q) { pred.AddRange(p); tgt.AddRange(q); }
        Add([5, 6, 7, 8], [5, 6, 7, 8]);                     // identical
        Add([2.5f, 3, 3.5f, 4], [5, 6, 7, 8]);               // nested
        Add([5, 6, 7, 8], [2.5f, 3, 3.5f, 4]);
        Add([1e-3f, 100, 100, 100], [50, 50, 50, 50]);       // one side tiny
        Add([0.01f, 500, 0.01f, 500], [500, 0.01f, 500, 0.01f]);   // thin, crossing
        Add([1e4f, 1e4f, 1e4f, 1e4f], [1, 1, 1, 1]);         // large
        Add([0.6f, 0.4f, 0.5f, 0.5f], [0.5f, 0.5f, 0.6f, 0.4f]);   // union of one pixel
        var p = tensor(pred.ToArray()).reshape(-1, 4);
        var q = tensor(tgt.ToArray()).reshape(-1, 4);

        var expected = Values(ReferenceGIoU(p, q).neg().add(One, One));
        AssertClose("generalized_box_iou_loss vs reference, union >= 1 px^2", Values(torchvision.ops.generalized_box_iou_loss(Corners(p), Corners(q))), expected, 1e-6, 1e-6);
        AssertClose("FcosLoss.GeneralizedIoU (TorchVision) vs reference", Values(FcosLoss.GeneralizedIoU(p, q).neg().add(One, One)), expected, 1e-6, 1e-6);
    }

    [Fact]
    public void GeneralizedIoULossOfSubPixelBoxesDiffersOnlyByTheEpsilon()
    {
        // The reference clamps the union and the enclosing area at 1e-6, TorchVision adds 1e-7 to them: below a square
        // pixel the two differ by about 1e-7 / union.
        using var scope = NewDisposeScope();
        var rng = new Random(3);
        var pred = RandomDistances(rng, 500);
        var tgt = RandomDistances(rng, 500);
        for (int i = 0; i < pred.Length; i++) { pred[i] *= 1e-3f; tgt[i] *= 1e-3f; }   // 0.001 .. 1 pixel
        var p = tensor(pred).reshape(-1, 4);
        var q = tensor(tgt).reshape(-1, 4);
        var union = Values(ReferenceUnion(p, q));
        var expected = Values(ReferenceGIoU(p, q).neg().add(One, One));
        var actual = Values(torchvision.ops.generalized_box_iou_loss(Corners(p), Corners(q)));
        var (abs, rel) = Diff(actual, expected);
        output.WriteLine($"sub-pixel boxes (union {union.Min():G3} .. {union.Max():G3} px^2): max |diff| {abs:G3}, max relative diff {rel:G3}, " +
            $"max |diff| x union {actual.Select((v, i) => Math.Abs(v - expected[i]) * union[i]).Max():G3}");
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 2e-7 / union[i] + 1e-6, $"[{i}] union {union[i]:G3}: {actual[i]:R} vs {expected[i]:R}");
    }

    static Tensor ReferenceUnion(Tensor p, Tensor q)
    {
        var areaP = p[.., 0].add(p[.., 2], One).mul(p[.., 1].add(p[.., 3], One));
        var areaQ = q[.., 0].add(q[.., 2], One).mul(q[.., 1].add(q[.., 3], One));
        var inter = minimum(p[.., 0], q[.., 0]).add(minimum(p[.., 2], q[.., 2]), One).mul(minimum(p[.., 1], q[.., 1]).add(minimum(p[.., 3], q[.., 3]), One));
        return areaP.add(areaQ, One).sub(inter);
    }

    [Fact]
    public void GeneralizedIoULossOfCornerBoxesMatchesTheDoublePrecisionFormula()
    {
        using var scope = NewDisposeScope();
        var rng = new Random(4);
        var (ea, eb) = EdgeCaseBoxPairs();
        float[] a = [.. RandomBoxes(rng, 1000), .. ea], b = [.. RandomBoxes(rng, 1000), .. eb];
        var expected = Enumerable.Range(0, a.Length / 4).Select(i => ReferenceGIoULoss(a[(4 * i)..(4 * i + 4)], b[(4 * i)..(4 * i + 4)])).ToArray();
        var actual = Values(torchvision.ops.generalized_box_iou_loss(tensor(a).reshape(-1, 4), tensor(b).reshape(-1, 4)));
        AssertClose("generalized_box_iou_loss vs double precision (random, disjoint, touching, nested, identical)", actual, expected, 1e-6, 1e-6);
    }

    [Fact]
    public void BoxIoUMatchesBoxOpsIoUExceptForAnEmptyUnion()
    {
        using var scope = NewDisposeScope();
        var rng = new Random(5);
        var (ea, eb) = EdgeCaseBoxPairs();
        float[] a = [.. RandomBoxes(rng, 60), .. ea, 5, 5, 5, 9], b = [.. RandomBoxes(rng, 70), .. eb, 0, 0, 8, 8];   // + a zero-width box
        int na = a.Length / 4, nb = b.Length / 4;
        var expected = new double[na * nb];
        for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            expected[i * nb + j] = BoxOps.IoU(a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3], b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]);
        Assert.Contains(expected, v => v == 1);
        Assert.Contains(expected, v => v == 0);
        var actual = Values(torchvision.ops.box_iou(tensor(a).reshape(-1, 4), tensor(b).reshape(-1, 4)));
        AssertClose("box_iou vs BoxOps.IoU", actual, expected, 1e-6, 1e-7);

        // two empty boxes: BoxOps.IoU says 0 (what ONNX Runtime's NonMaxSuppression uses), box_iou divides 0 by 0
        Assert.Equal(0f, BoxOps.IoU(5, 5, 5, 5, 5, 5, 5, 5));
        Assert.True(float.IsNaN(torchvision.ops.box_iou(tensor(new float[] { 5, 5, 5, 5 }).reshape(1, 4), tensor(new float[] { 5, 5, 5, 5 }).reshape(1, 4)).item<float>()));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FcosLossComputeMatchesTheReferenceLossAndGradients(bool withBoxes)
    {
        using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(), 3, PyramidChannels: 16, HeadConvs: 1));
        using var scope = NewDisposeScope();
        var rng = new Random(6);
        int n = 3, a = model.Locations.X.Length, k = 3;
        var boxes = Enumerable.Range(0, n).Select(img => withBoxes
            ? Enumerable.Range(0, img).Select(_ =>
            {
                float x = (float)(rng.NextDouble() * 20), y = (float)(rng.NextDouble() * 20), w = 4 + (float)(rng.NextDouble() * 12), h = 4 + (float)(rng.NextDouble() * 12);
                return new BoxAnnotation(x, y, Math.Min(32, x + w), Math.Min(32, y + h), rng.Next(k));
            }).ToArray()
            : []).ToList();
        var dist = Normal(rng, n * a * 4, 0.7);
        for (int i = 0; i < dist.Length; i++) dist[i] = MathF.Exp(dist[i]) * 4;
        (Tensor Logits, Tensor Distances, Tensor Centerness) Leaves() => (
            tensor(Normal(new Random(7), n * a * k, 3)).reshape(n, a, k).requires_grad_(),
            tensor(dist).reshape(n, a, 4).requires_grad_(),
            tensor(Normal(new Random(8), n * a, 1)).reshape(n, a).requires_grad_());

        var (x1, d1, c1) = Leaves();
        var actual = FcosLoss.Compute(model, new FcosOutput(x1, d1, c1), boxes);
        actual.backward();
        var (x2, d2, c2) = Leaves();
        var expected = ReferenceLoss(model, new FcosOutput(x2, d2, c2), boxes);
        expected.backward();

        string tag = withBoxes ? $"{boxes.Sum(b => b.Length)} boxes" : "no boxes";
        AssertClose($"FcosLoss.Compute (TorchVision ops) vs reference loss ({tag})", Values(actual), Values(expected), 1e-6, 0);
        foreach (var (name, g1, g2) in new[] { ("class logits", x1.grad!, x2.grad!), ("distances", d1.grad!, d2.grad!), ("centerness", c1.grad!, c2.grad!) })
        {
            var e = Values(g2);
            AssertClose($"  gradient of the {name}", Values(g1), e, 1e-5, 1e-6 * Math.Max(1e-6, e.Max(v => Math.Abs(v))));
        }
    }
}
