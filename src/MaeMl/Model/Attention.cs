using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Multi-head self-attention with a fused qkv projection (timm's <c>Attention</c>, qkv_bias=True), computed by
/// <c>scaled_dot_product_attention</c> (scale head_dim^-0.5, as the official code). With relative positions (detectron2's
/// <c>Attention(use_rel_pos=True)</c>) it also holds <c>rel_pos_h</c> / <c>rel_pos_w</c> [2 size - 1, head_dim], zero-initialised,
/// whose decomposed bias is the additive <c>attn_mask</c> of the same call. In bfloat16 on the CPU, for up to
/// <see cref="MathPathMaxTokens"/> tokens, the same attention is computed as timm's unfused path instead
/// (<c>softmax((q * scale) @ k^T + bias) @ v</c>): LibTorch's CPU <c>scaled_dot_product_attention</c> kernel took 2-6x longer for
/// forward + backward in bfloat16 at 17-400 tokens, while from about 1,000 tokens the kernel is 3-5x faster than the unfused path
/// (2026-12-02, AMD EPYC with AVX512-BF16; float32 keeps the fused kernel, which was as fast or faster there).</summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    readonly Linear qkv;
    readonly Linear proj;
    readonly Parameter? rel_pos_h;
    readonly Parameter? rel_pos_w;
    readonly int numHeads;
    readonly Scalar scale;   // head_dim^-0.5, kept for the module's lifetime (no temporary Scalar in the hot path)

    /// <summary>Longest sequence that takes the unfused bfloat16 CPU path (the attention matrix [B, H, N, N] is materialised there).</summary>
    internal const int MathPathMaxTokens = 512;

    /// <summary><paramref name="numHeads"/> heads of width dim / numHeads; <c>qkv</c> dim -> 3 dim and <c>proj</c> dim -> dim, both with bias.</summary>
    public Attention(int dim, int numHeads) : this(dim, numHeads, default) { }

    /// <summary>As <see cref="Attention(int, int)"/>; with a non-zero <paramref name="relPosSize"/> (the token grid it attends over: a window, or the whole patch grid) the
    /// zero-initialised relative position tables <c>rel_pos_h</c> [2 H - 1, head_dim] and <c>rel_pos_w</c> [2 W - 1, head_dim].</summary>
    public Attention(int dim, int numHeads, (int Height, int Width) relPosSize) : base(nameof(Attention))
    {
        this.numHeads = numHeads;
        scale = Math.Pow(dim / numHeads, -0.5).ToScalar();
        qkv = nn.Linear(dim, dim * 3, hasBias: true);
        proj = nn.Linear(dim, dim);
        if (relPosSize.Height > 0 && relPosSize.Width > 0)
        {
            rel_pos_h = new Parameter(zeros(2 * relPosSize.Height - 1, dim / numHeads));
            rel_pos_w = new Parameter(zeros(2 * relPosSize.Width - 1, dim / numHeads));
        }
        RegisterComponents();
    }

    /// <summary>True when the block adds the decomposed relative position bias.</summary>
    internal bool HasRelativePositions => rel_pos_h is not null;

    /// <summary>x [B, N, D] -> [B, N, D], every token attending to every token (no mask, no dropout); or, detectron2's layout,
    /// x [B, H, W, D] -> [B, H, W, D], the H*W tokens attending to each other with the relative position bias when the block has it.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.ndim == 4) return ForwardGrid(x);
        if (rel_pos_h is not null) throw new ArgumentException($"Relative positions need tokens as a grid [B, H, W, D], got [{string.Join(", ", x.shape)}]");
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var qkvOut = qkv.forward(x).reshape(b, n, 3, numHeads, c / numHeads).permute(2, 0, 3, 1, 4); // [3, B, H, N, hd]
        var parts = qkvOut.unbind(0);
        var attended = Attend(parts[0], parts[1], parts[2], null);                                 // [B, H, N, hd]
        var merged = attended.transpose(1, 2).reshape(b, n, c);                                   // [B, N, D]
        return proj.forward(merged).MoveToOuterDisposeScope();
    }

    /// <summary>softmax(q k^T * scale + bias) v for q, k, v [B, H, N, hd] (see the class summary for which kernel computes it).</summary>
    Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? bias)
    {
        if (q.dtype != ScalarType.BFloat16 || q.device_type != DeviceType.CPU || q.shape[^2] > MathPathMaxTokens)
            return nn.functional.scaled_dot_product_attention(q, k, v, bias);
        var scores = q.mul(scale).matmul(k.transpose(-2, -1));                                    // [B, H, N, N]
        if (bias is not null) scores = scores.add(bias, Scalars.One);
        return scores.softmax(-1).matmul(v);
    }

    Tensor ForwardGrid(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        var qkvOut = qkv.forward(x).reshape(b, h * w, 3, numHeads, c / numHeads).permute(2, 0, 3, 1, 4); // [3, B, nh, HW, hd]
        var parts = qkvOut.unbind(0);
        var bias = rel_pos_h is null ? null
            : VitDetOps.DecomposedRelPosBias(parts[0], rel_pos_h, rel_pos_w!, ((int)h, (int)w), ((int)h, (int)w));   // [B, nh, HW, HW]
        var attended = Attend(parts[0], parts[1], parts[2], bias);                                                 // [B, nh, HW, hd]
        var merged = attended.transpose(1, 2).reshape(b, h, w, c);                                                   // [B, H, W, D]
        return proj.forward(merged).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) scale.Dispose();
        base.Dispose(disposing);
    }
}
