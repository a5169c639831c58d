using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Multi-head self-attention with a fused qkv projection (timm's <c>Attention</c>, qkv_bias=True), computed by
/// <c>scaled_dot_product_attention</c> (scale head_dim^-0.5, as the official code).</summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    readonly Linear qkv;
    readonly Linear proj;
    readonly int numHeads;

    /// <summary><paramref name="numHeads"/> heads of width dim / numHeads; <c>qkv</c> dim -> 3 dim and <c>proj</c> dim -> dim, both with bias.</summary>
    public Attention(int dim, int numHeads) : base(nameof(Attention))
    {
        this.numHeads = numHeads;
        qkv = nn.Linear(dim, dim * 3, hasBias: true);
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    /// <summary>x [B, N, D] -> [B, N, D], every token attending to every token (no mask, no dropout).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var qkvOut = qkv.forward(x).reshape(b, n, 3, numHeads, c / numHeads).permute(2, 0, 3, 1, 4); // [3, B, H, N, hd]
        var parts = qkvOut.unbind(0);
        var attended = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]); // [B, H, N, hd]
        var merged = attended.transpose(1, 2).reshape(b, n, c);                                   // [B, N, D]
        return proj.forward(merged).MoveToOuterDisposeScope();
    }
}
