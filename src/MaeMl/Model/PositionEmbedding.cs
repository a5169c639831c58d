namespace MaeMl.Model;

/// <summary>Fixed 2-D sin-cos position tables, bit-compatible with the official <c>util/pos_embed.py</c>.</summary>
public static class PositionEmbedding
{
    /// <summary>
    /// <c>get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token)</c>: [(cls ? 1 : 0) + g*g, D], row-major over the grid
    /// (token l = row*g + col). The first D/2 channels encode the column, the last D/2 the row, each as
    /// [sin(pos*omega), cos(pos*omega)] with omega = 1/10000^(k/(D/4)); computed in float64 like numpy, stored as float32.
    /// </summary>
    public static float[,] SinCos2D(int embedDim, int gridSize, bool clsToken) => SinCos2D(embedDim, gridSize, gridSize, clsToken);

    /// <summary>
    /// The same table for a <paramref name="gridHeight"/> x <paramref name="gridWidth"/> grid, [(cls ? 1 : 0) + gh*gw, D], token
    /// l = row*gw + col: the official <c>meshgrid(grid_w, grid_h)</c> generalised to two sides (timm and ViTDet do the same), so a
    /// row holds exactly the values of the square table at the same (row, col); a square grid gives <see cref="SinCos2D(int, int, bool)"/> bit for bit.
    /// </summary>
    public static float[,] SinCos2D(int embedDim, int gridHeight, int gridWidth, bool clsToken)
    {
        if (embedDim % 4 != 0) throw new ArgumentException($"embed_dim {embedDim} must be divisible by 4", nameof(embedDim));
        if (gridHeight < 1 || gridWidth < 1) throw new ArgumentException($"a position grid needs positive sides, got {gridHeight}x{gridWidth}");
        int offset = clsToken ? 1 : 0, half = embedDim / 2, quarter = embedDim / 4;
        var table = new float[offset + gridHeight * gridWidth, embedDim]; // cls row stays zero
        var omega = new double[quarter];
        for (int k = 0; k < quarter; k++) omega[k] = 1.0 / Math.Pow(10000, k / (half / 2.0));
        for (int row = 0; row < gridHeight; row++)
        for (int col = 0; col < gridWidth; col++)
        {
            int l = offset + row * gridWidth + col;
            for (int k = 0; k < quarter; k++)
            {
                double w = col * omega[k], h = row * omega[k];
                table[l, k] = (float)Math.Sin(w);
                table[l, quarter + k] = (float)Math.Cos(w);
                table[l, half + k] = (float)Math.Sin(h);
                table[l, half + quarter + k] = (float)Math.Cos(h);
            }
        }
        return table;
    }
}
