using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Stochastic depth per sample (timm's <c>drop_path</c>): in training, zero a residual branch with probability p and scale survivors by 1/(1-p).</summary>
internal static class DropPath
{
    /// <summary>x with each sample's branch zeroed with probability <paramref name="p"/> and the rest scaled by 1/(1-p) (a per-sample
    /// Bernoulli mask broadcast over all but dim 0); an alias of x when p is 0 or not <paramref name="training"/>. Returns a new tensor.</summary>
    public static Tensor Apply(Tensor x, double p, bool training)
    {
        if (p == 0 || !training) return x.alias();
        double keep = 1 - p;
        var shape = new long[x.ndim];
        shape[0] = x.shape[0];
        for (int i = 1; i < shape.Length; i++) shape[i] = 1;
        using var mask = torch.empty(shape, x.dtype, x.device).bernoulli_(keep);   // a double argument, not a Scalar
        using var keepScalar = keep.ToScalar();
        using var scaled = x.div(keepScalar);
        return scaled.mul(mask);
    }
}
