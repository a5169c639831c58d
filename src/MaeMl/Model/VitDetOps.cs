using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>
/// The pure helpers of ViTDet's backbone, as detectron2's <c>modeling/backbone/utils.py</c>: <c>window_partition</c> /
/// <c>window_unpartition</c> (zero padding to a multiple of the window), <c>get_rel_pos</c> (linear interpolation of a relative
/// position table to another size), the decomposed relative position bias of <c>add_decomposed_rel_pos</c> (returned as the additive
/// bias rather than added to a materialised attention map, so attention can stay <c>scaled_dot_product_attention</c>) and
/// <c>get_abs_pos</c> (the position table without its cls row, bicubically resized to the grid). Used by the model and, for the
/// fixed sizes of an exported graph, by the ONNX writer.
/// </summary>
internal static class VitDetOps
{
    /// <summary>x [B, H, W, C] -> windows [B * nW, ws, ws, C] and the padded size (Hp, Wp): the bottom and right are zero-padded to
    /// multiples of <paramref name="windowSize"/>; windows in row-major order of the window grid.</summary>
    public static (Tensor Windows, long Hp, long Wp) WindowPartition(Tensor x, int windowSize)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        long padH = (windowSize - h % windowSize) % windowSize, padW = (windowSize - w % windowSize) % windowSize;
        if (padH > 0 || padW > 0) x = nn.functional.pad(x, new[] { 0, 0, 0, padW, 0, padH });
        long hp = h + padH, wp = w + padW;
        var windows = x.view(b, hp / windowSize, windowSize, wp / windowSize, windowSize, c)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, windowSize, windowSize, c);   // [B * nW, ws, ws, C]
        return (windows.MoveToOuterDisposeScope(), hp, wp);
    }

    /// <summary>windows [B * nW, ws, ws, C] of a padded (Hp, Wp) grid -> x [B, H, W, C] (the padding cut off).</summary>
    public static Tensor WindowUnpartition(Tensor windows, int windowSize, long hp, long wp, long h, long w)
    {
        using var scope = NewDisposeScope();
        long b = windows.shape[0] / (hp * wp / windowSize / windowSize);
        var x = windows.view(b, hp / windowSize, wp / windowSize, windowSize, windowSize, -1)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(b, hp, wp, -1);                    // [B, Hp, Wp, C]
        if (hp > h || wp > w) x = x[.., ..(int)h, ..(int)w, ..].contiguous();
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>detectron2's <c>get_rel_pos</c>: the table <paramref name="relPos"/> [L, C] (linearly interpolated to 2 max(q, k) - 1 rows
    /// when it has another length) gathered at the relative position of every (query, key) pair: [qSize, kSize, C].</summary>
    public static Tensor GetRelPos(int qSize, int kSize, Tensor relPos)
    {
        using var scope = NewDisposeScope();
        int maxRelDist = 2 * Math.Max(qSize, kSize) - 1;
        var table = relPos;
        if (relPos.shape[0] != maxRelDist)
            table = nn.functional.interpolate(relPos.reshape(1, relPos.shape[0], -1).permute(0, 2, 1), size: new long[] { maxRelDist }, mode: InterpolationMode.Linear)
                .reshape(-1, maxRelDist).permute(1, 0);                                       // [maxRelDist, C]
        double qScale = Math.Max((double)kSize / qSize, 1.0), kScale = Math.Max((double)qSize / kSize, 1.0);
        var index = new long[qSize * kSize];
        for (int i = 0; i < qSize; i++)
            for (int j = 0; j < kSize; j++)
                index[i * kSize + j] = (long)(i * qScale - j * kScale + (kSize - 1) * kScale);  // q_coords - k_coords + (k - 1) * scale, .long()
        using var idx = tensor(index, new long[] { qSize * kSize }, device: relPos.device);
        return table.index_select(0, idx).reshape(qSize, kSize, -1).MoveToOuterDisposeScope();
    }

    /// <summary>The decomposed relative position bias of <c>add_decomposed_rel_pos</c> (MViTv2) for queries <paramref name="q"/>
    /// [B, heads, qh*qw, hd] (unscaled, as detectron2 passes them): bias[b, i, j, k, l] = q[b, i, j] . Rh[i, k] + q[b, i, j] . Rw[j, l],
    /// returned as [B, heads, qh*qw, kh*kw] to add to the scaled scores (an <c>attn_mask</c> of <c>scaled_dot_product_attention</c>).</summary>
    public static Tensor DecomposedRelPosBias(Tensor q, Tensor relPosH, Tensor relPosW, (int H, int W) qSize, (int H, int W) kSize)
    {
        using var scope = NewDisposeScope();
        var rh = GetRelPos(qSize.H, kSize.H, relPosH);                                         // [qh, kh, hd]
        var rw = GetRelPos(qSize.W, kSize.W, relPosW);                                         // [qw, kw, hd]
        long b = q.shape[0], heads = q.shape[1], dim = q.shape[3];
        var rq = q.reshape(b * heads, qSize.H, qSize.W, dim);                                   // [B', qh, qw, hd]
        var relH = einsum("bhwc,hkc->bhwk", rq, rh);                                            // [B', qh, qw, kh]
        var relW = einsum("bhwc,wkc->bhwk", rq, rw);                                            // [B', qh, qw, kw]
        var bias = relH.unsqueeze(-1).add(relW.unsqueeze(-2), Scalars.One);                      // [B', qh, qw, kh, kw]
        return bias.reshape(b, heads, qSize.H * qSize.W, kSize.H * kSize.W).MoveToOuterDisposeScope();
    }

    /// <summary>detectron2's <c>get_abs_pos</c> with <c>has_cls_token=True</c>: the table <paramref name="posEmbed"/> [1, 1+L, D] (L = h*w, or a square g*g) without
    /// its cls row as a grid [1, h, w, D], bicubically resized (<c>align_corners=False</c>) when g is not (h, w).</summary>
    public static Tensor GetAbsPos(Tensor posEmbed, long h, long w)
    {
        using var scope = NewDisposeScope();
        var grid = posEmbed[.., 1..];
        long d = posEmbed.shape[2];
        if (grid.shape[1] == h * w) return grid.reshape(1, h, w, d).MoveToOuterDisposeScope();   // the table is this grid's (square or not)
        var side = PositionEmbeddingInterpolation.GridSide(grid.shape[1], 0)
            ?? throw new ArgumentException($"a position table of {posEmbed.shape[1]} rows is neither a cls row plus the {h}x{w} grid nor a cls row plus a square grid");
        var result = nn.functional.interpolate(grid.reshape(1, side, side, d).permute(0, 3, 1, 2), size: new[] { h, w },
            mode: InterpolationMode.Bicubic, align_corners: false).permute(0, 2, 3, 1);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>True for the state-dict names of relative position tables (<c>blocks.N.attn.rel_pos_h</c>, <c>..._w</c>), which MAE
    /// weights do not have: a windowed backbone keeps its zero init for them.</summary>
    public static bool IsRelativePosition(string name) => name.EndsWith(".attn.rel_pos_h", StringComparison.Ordinal) || name.EndsWith(".attn.rel_pos_w", StringComparison.Ordinal);
}
