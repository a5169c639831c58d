using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Pre-norm transformer block (timm's <c>Block</c>): x + attn(norm1(x)), then x + mlp(norm2(x)); LayerNorm eps 1e-6.
/// With a window size (detectron2's ViTDet <c>Block(window_size)</c>) it takes tokens as a grid [N, H, W, D] and attends inside
/// non-overlapping windows, the grid zero-padded after norm1 to a multiple of the window and cropped back after attention.</summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    readonly LayerNorm norm1;
    readonly Attention attn;
    readonly LayerNorm norm2;
    readonly Mlp mlp;
    readonly double dropPath;
    readonly int windowSize;

    /// <summary>A block of width <paramref name="dim"/> with <paramref name="numHeads"/> heads, an MLP of hidden width
    /// int(dim * <paramref name="mlpRatio"/>), LayerNorm <paramref name="eps"/> and stochastic depth rate <paramref name="dropPath"/>
    /// on both residual branches (timm's <c>drop_path</c>; active only in training).</summary>
    public Block(int dim, int numHeads, double mlpRatio, double eps = 1e-6, double dropPath = 0) : this(dim, numHeads, mlpRatio, eps, dropPath, 0, default) { }

    /// <summary>As <see cref="Block(int, int, double, double, double)"/>; <paramref name="windowSize"/> &gt; 0 makes it a window block
    /// (ViTDet), <paramref name="relPosSize"/> (the window, or the patch grid of a global block; (0, 0) for none) gives its attention
    /// relative positions.</summary>
    public Block(int dim, int numHeads, double mlpRatio, double eps, double dropPath, int windowSize, (int Height, int Width) relPosSize)
        : base(nameof(Block))
    {
        if (windowSize < 0) throw new ArgumentException($"A block's window size must be >= 0, got {windowSize}");
        norm1 = nn.LayerNorm(dim, eps);
        attn = new Attention(dim, numHeads, relPosSize);
        norm2 = nn.LayerNorm(dim, eps);
        mlp = new Mlp(dim, (int)(dim * mlpRatio));
        this.dropPath = dropPath;
        this.windowSize = windowSize;
        RegisterComponents();
    }

    /// <summary>Side of the attention windows in tokens; 0 for a global block.</summary>
    internal int WindowSize => windowSize;

    /// <summary>x [N, T, D] -> [N, T, D], or a token grid x [N, H, W, D] -> [N, H, W, D] (window blocks need the grid).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = norm1.forward(x);
        if (windowSize > 0)
        {
            if (x.ndim != 4) throw new ArgumentException($"A window block needs tokens as a grid [N, H, W, D], got [{string.Join(", ", x.shape)}]");
            long gh = x.shape[1], gw = x.shape[2];
            var (windows, hp, wp) = VitDetOps.WindowPartition(a, windowSize);                   // [N * nW, ws, ws, D]
            a = VitDetOps.WindowUnpartition(attn.forward(windows), windowSize, hp, wp, gh, gw); // [N, H, W, D]
        }
        else a = attn.forward(a);
        var h = x.add(DropPath.Apply(a, dropPath, training), Scalars.One);
        var y = h.add(DropPath.Apply(mlp.forward(norm2.forward(h)), dropPath, training), Scalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
