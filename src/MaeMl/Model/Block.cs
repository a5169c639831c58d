using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Pre-norm transformer block (timm's <c>Block</c>): x + attn(norm1(x)), then x + mlp(norm2(x)); LayerNorm eps 1e-6.</summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    readonly LayerNorm norm1;
    readonly Attention attn;
    readonly LayerNorm norm2;
    readonly Mlp mlp;
    readonly double dropPath;

    /// <summary>A block of width <paramref name="dim"/> with <paramref name="numHeads"/> heads, an MLP of hidden width
    /// int(dim * <paramref name="mlpRatio"/>), LayerNorm <paramref name="eps"/> and stochastic depth rate <paramref name="dropPath"/>
    /// on both residual branches (timm's <c>drop_path</c>; active only in training).</summary>
    public Block(int dim, int numHeads, double mlpRatio, double eps = 1e-6, double dropPath = 0) : base(nameof(Block))
    {
        norm1 = nn.LayerNorm(dim, eps);
        attn = new Attention(dim, numHeads);
        norm2 = nn.LayerNorm(dim, eps);
        mlp = new Mlp(dim, (int)(dim * mlpRatio));
        this.dropPath = dropPath;
        RegisterComponents();
    }

    /// <summary>x [N, T, D] -> [N, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.add(DropPath.Apply(attn.forward(norm1.forward(x)), dropPath, training), Scalars.One);
        var y = h.add(DropPath.Apply(mlp.forward(norm2.forward(h)), dropPath, training), Scalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
