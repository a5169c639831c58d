using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>LayerNorm over the channel dimension of [N, C, H, W] maps (detectron2's <c>LayerNorm</c> used by ViTDet), eps 1e-6.</summary>
public sealed class LayerNorm2d : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter bias;
    readonly double eps;

    /// <summary>Weight 1 and bias 0 over <paramref name="channels"/>; <paramref name="eps"/> is added to the (biased) variance.</summary>
    public LayerNorm2d(long channels, double eps = 1e-6) : base(nameof(LayerNorm2d))
    {
        weight = new Parameter(ones(channels));
        bias = new Parameter(zeros(channels));
        this.eps = eps;
        RegisterComponents();
    }

    /// <summary>x [N, C, H, W] -> [N, C, H, W], each pixel's C values normalised to mean 0, variance 1, then scaled and shifted per channel.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var u = x.mean(new long[] { 1 }, keepdim: true);
        var centered = x.sub(u);
        var s = centered.pow(Scalars.Two).mean(new long[] { 1 }, keepdim: true);
        using var e = eps.ToScalar();   // explicit and alive to the end: no temporary Scalar reaches LibTorch
        var y = centered.div(s.add(e, Scalars.One).sqrt());
        return weight[.., TensorIndex.None, TensorIndex.None].mul(y).add(bias[.., TensorIndex.None, TensorIndex.None], Scalars.One).MoveToOuterDisposeScope();
    }
}
