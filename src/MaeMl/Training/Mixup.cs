using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>Settings of <see cref="Mixup"/>, named as timm's <c>Mixup</c> and <c>main_finetune.py</c> (defaults: the paper's fine-tuning).</summary>
public sealed record MixupOptions
{
    /// <summary>Mixup Beta(alpha, alpha); 0 disables mixup.</summary>
    public double MixupAlpha { get; init; } = 0.8;
    /// <summary>CutMix Beta(alpha, alpha); 0 disables cutmix.</summary>
    public double CutmixAlpha { get; init; } = 1.0;
    /// <summary>Probability of mixing a batch at all.</summary>
    public double Prob { get; init; } = 1.0;
    /// <summary>When both are on, probability of cutmix instead of mixup.</summary>
    public double SwitchProb { get; init; } = 0.5;
    /// <summary>Label smoothing of the targets (applies with mixing off too).</summary>
    public double LabelSmoothing { get; init; } = 0.1;

    /// <summary>No mixing, no smoothing: plain cross entropy.</summary>
    public static MixupOptions None => new() { MixupAlpha = 0, CutmixAlpha = 0, LabelSmoothing = 0 };

    /// <summary>True when a batch can be mixed: <see cref="Prob"/> &gt; 0 and mixup or cutmix is on.</summary>
    public bool Mixes => Prob > 0 && (MixupAlpha > 0 || CutmixAlpha > 0);
}

/// <summary>
/// timm's <c>Mixup</c> in 'batch' mode: with probability <c>prob</c> one lambda ~ Beta(alpha, alpha) per batch, mixup
/// (<c>x lam + x.flip(0) (1 - lam)</c>) or cutmix (a box of area <c>1 - lam</c> from the flipped batch, lam corrected to
/// the clipped box area), chosen with <c>switch_prob</c>; targets are the same mixture of smoothed one-hot labels.
/// Randomness comes from the <see cref="Random"/> passed in, so a step is reproducible from its seed.
/// </summary>
/// <param name="options">Mixup, cutmix and label-smoothing settings.</param>
/// <param name="numClasses">Classes C of the soft targets.</param>
public sealed class Mixup(MixupOptions options, int numClasses)
{
    /// <summary>The settings this mixer applies.</summary>
    public MixupOptions Options { get; } = options;

    /// <summary>Mixed images (a new tensor) and soft targets [N, C] for a batch; <paramref name="lambda"/> is 1 when not mixed.</summary>
    public (Tensor Images, Tensor Targets) Apply(Tensor images, Tensor labels, Random rng, out double lambda)
    {
        using var scope = NewDisposeScope();
        var o = Options;
        lambda = 1.0;
        bool cutmix = false;
        if (o.Mixes && rng.NextDouble() < o.Prob)
        {
            cutmix = o.MixupAlpha <= 0 || (o.CutmixAlpha > 0 && rng.NextDouble() < o.SwitchProb);
            lambda = Beta(rng, cutmix ? o.CutmixAlpha : o.MixupAlpha);
        }
        var targets = SoftTargetCrossEntropy.OneHot(labels, numClasses, o.LabelSmoothing);
        Tensor mixed;
        if (lambda >= 1.0) mixed = images.clone();
        else
        {
            var flipped = images.flip(0);
            if (cutmix)
            {
                long h = images.shape[2], w = images.shape[3];
                double cut = Math.Sqrt(1 - lambda);
                long ch = (long)(h * cut), cw = (long)(w * cut);
                long cy = rng.NextInt64(h), cx = rng.NextInt64(w);
                long y0 = Math.Clamp(cy - ch / 2, 0, h), y1 = Math.Clamp(cy + ch / 2, 0, h);
                long x0 = Math.Clamp(cx - cw / 2, 0, w), x1 = Math.Clamp(cx + cw / 2, 0, w);
                mixed = images.clone();
                if (y1 > y0 && x1 > x0)
                {
                    var box = new[] { TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(y0, y1), TensorIndex.Slice(x0, x1) };
                    mixed[box] = flipped[box];
                }
                lambda = 1.0 - (double)(y1 - y0) * (x1 - x0) / (h * w);
            }
            else mixed = Blend(images, flipped, lambda);
            targets = Blend(targets, targets.flip(0), lambda);
        }
        return (mixed.MoveToOuterDisposeScope(), targets.MoveToOuterDisposeScope());
    }

    /// <summary><c>a * lambda + b * (1 - lambda)</c> with explicit Scalars held to the end (no temporary Scalar reaches LibTorch).</summary>
    static Tensor Blend(Tensor a, Tensor b, double lambda)
    {
        using var l = lambda.ToScalar();
        using var rest = (1 - lambda).ToScalar();
        return a.mul(l).add_(b.mul(rest), Model.Scalars.One);
    }

    /// <summary>Beta(a, a) from two Gamma draws (Marsaglia-Tsang).</summary>
    public static double Beta(Random rng, double a)
    {
        double x = Gamma(rng, a), y = Gamma(rng, a);
        return x + y == 0 ? 0.5 : x / (x + y);
    }

    static double Gamma(Random rng, double shape)
    {
        if (shape < 1) return Gamma(rng, shape + 1) * Math.Pow(rng.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do { x = Normal(rng); v = 1 + c * x; } while (v <= 0);
            v = v * v * v;
            double u = rng.NextDouble();
            if (u < 1 - 0.0331 * x * x * x * x || Math.Log(u) < 0.5 * x * x + d * (1 - v + Math.Log(v))) return d * v;
        }
    }

    static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
