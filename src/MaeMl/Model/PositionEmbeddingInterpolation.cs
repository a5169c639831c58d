using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>
/// Resizes a position table to another patch grid as the official <c>util/pos_embed.interpolate_pos_embed</c> (and, for a
/// non-square grid, ViTDet's <c>get_abs_pos</c>): the extra (cls) rows are kept, the grid rows are reshaped to [1, D, g, g],
/// resized with bicubic interpolation (<c>align_corners=False</c>) to the new gh x gw grid and flattened back (token l = row*gw + col).
/// Used for the learnable tables of fine-tuned models and, likewise, for MAE's fixed sin-cos tables, so a checkpoint's table is
/// carried over rather than silently regenerated. The source table is square, as every pretrained one is.
/// </summary>
public static class PositionEmbeddingInterpolation
{
    /// <summary>Side of the square patch grid a table of <paramref name="tokens"/> rows describes, or null when not square.</summary>
    public static int? GridSide(long tokens, int extraTokens = 1)
    {
        long patches = tokens - extraTokens;
        if (patches <= 0) return null;
        var side = (int)Math.Round(Math.Sqrt(patches));
        return (long)side * side == patches ? side : null;
    }

    /// <summary>table [1, 1 + g*g, D] -> new tensor [1, 1 + newGrid^2, D] (float32 math; the result has the input dtype).</summary>
    public static Tensor Interpolate(Tensor table, int newGrid) => Interpolate(table, newGrid, newGrid);

    /// <summary>table [1, extra + g*g, D] -> new tensor [1, extra + newHeight*newWidth, D] (float32 math; the result has the input
    /// dtype); a copy of the table when the grid is already newHeight x newWidth.</summary>
    public static Tensor Interpolate(Tensor table, int newHeight, int newWidth, int extraTokens = 1)
    {
        if (table.ndim != 3 || table.shape[0] != 1)
            throw new ArgumentException($"a position table must be [1, tokens, D], got [{string.Join(", ", table.shape)}]");
        if (newHeight < 1 || newWidth < 1) throw new ArgumentException($"a position grid needs positive sides, got {newHeight}x{newWidth}");
        var oldGrid = GridSide(table.shape[1], extraTokens)
            ?? throw new ArgumentException($"a position table of {table.shape[1]} rows is not {extraTokens} extra row(s) plus a square grid");
        if (oldGrid == newHeight && oldGrid == newWidth) return table.clone();
        using var scope = NewDisposeScope();
        long d = table.shape[2];
        var extra = table[.., ..extraTokens];
        var grid = table[.., extraTokens..].to_type(ScalarType.Float32).reshape(1, oldGrid, oldGrid, d).permute(0, 3, 1, 2);   // [1, D, g, g]
        var resized = nn.functional.interpolate(grid, size: new long[] { newHeight, newWidth }, mode: InterpolationMode.Bicubic, align_corners: false);
        var tokens = resized.permute(0, 2, 3, 1).flatten(1, 2).to_type(table.dtype);                                          // [1, gh*gw, D]
        return cat(new[] { extra, tokens }, 1).MoveToOuterDisposeScope();
    }
}
