namespace MaeMl.Model;

/// <summary>
/// How the blocks of the dense backbone attend: everywhere globally over [cls + patches] (the default, MAE's encoder as
/// pretrained), or as ViTDet (Li et al. 2022; detectron2 <c>modeling/backbone/vit.py</c>, <c>ViT(window_size,
/// window_block_indexes, use_rel_pos)</c>): the patch tokens as a grid [N, h, w, D] without the cls token, attention inside
/// non-overlapping <see cref="WindowSize"/> x <see cref="WindowSize"/> windows (the grid zero-padded to a multiple of the window)
/// except in <see cref="GlobalBlocks"/>, which attend over the whole grid, and with <see cref="RelativePositions"/> MViTv2's
/// decomposed relative position bias in every block (<c>attn.rel_pos_h</c> / <c>attn.rel_pos_w</c>, zero-initialised).
/// The MAE encoder weights load unchanged either way.
/// </summary>
public sealed record BackboneAttention
{
    /// <summary>Side of the attention windows in patches; 0 = no windows (every block global).</summary>
    public int WindowSize { get; init; }

    /// <summary>Indices of the blocks that attend over the whole grid when <see cref="WindowSize"/> is set (ViTDet-B: 2, 5, 8, 11);
    /// every other block attends inside its windows.</summary>
    public int[] GlobalBlocks { get; init; } = [];

    /// <summary>Add the decomposed relative position bias (detectron2 <c>use_rel_pos</c>, <c>rel_pos_zero_init=True</c>): per block
    /// <c>attn.rel_pos_h</c> and <c>attn.rel_pos_w</c> [2 size - 1, head_dim], size = the window for window blocks, the patch grid for global ones.</summary>
    public bool RelativePositions { get; init; }

    /// <summary>Today's behaviour: every block global over [cls + patches], no relative positions.</summary>
    public static BackboneAttention Global { get; } = new();

    /// <summary>ViTDet's setting for a ViT of <paramref name="depth"/> blocks: window 14, relative positions, global attention in the
    /// last block of each quarter (<see cref="VitDetGlobalBlocks"/>: 2, 5, 8, 11 for ViT-B; 5, 11, 17, 23 for ViT-L; 7, 15, 23, 31 for
    /// ViT-H). ViTDet also trains with drop path 0.1 (<see cref="MaeConfig.DropPath"/>) and layer decay 0.7.</summary>
    public static BackboneAttention VitDet(int depth) => new() { WindowSize = 14, GlobalBlocks = VitDetGlobalBlocks(depth), RelativePositions = true };

    /// <summary>ViTDet-B: <see cref="VitDet"/> for the 12 blocks of ViT-B (window 14, global blocks 2, 5, 8, 11, relative positions).</summary>
    public static BackboneAttention VitDetBase => VitDet(12);

    /// <summary>The last block of each quarter of <paramref name="depth"/> blocks, ceil((i+1) depth / 4) - 1 for i = 0..3, without repeats
    /// (detectron2's ViTDet configs: 2, 5, 8, 11 of 12; 5, 11, 17, 23 of 24; 7, 15, 23, 31 of 32).</summary>
    public static int[] VitDetGlobalBlocks(int depth)
    {
        if (depth < 1) throw new ArgumentException($"A ViT needs at least one block, got depth {depth}");
        return Enumerable.Range(0, 4).Select(i => ((i + 1) * depth + 3) / 4 - 1).Distinct().ToArray();
    }

    /// <summary>True when the backbone runs detectron2's way (windows or relative positions): patch tokens as a grid, no cls token.</summary>
    public bool TokenGrid => WindowSize > 0 || RelativePositions;

    /// <summary>True when block <paramref name="block"/> attends inside windows (a window size is set and it is not a global block).</summary>
    public bool IsWindowed(int block) => WindowSize > 0 && !GlobalBlocks.Contains(block);

    /// <summary>Checks the settings against a ViT of <paramref name="depth"/> blocks and returns this; throws <see cref="ArgumentException"/> naming the problem.</summary>
    public BackboneAttention Validate(int depth)
    {
        if (WindowSize < 0) throw new ArgumentException($"Invalid backbone attention: the window size must be >= 0 (0 = global), got {WindowSize}");
        var blocks = GlobalBlocks ?? throw new ArgumentException("Invalid backbone attention: GlobalBlocks is null (use an empty list)");
        if (blocks.Length > 0 && WindowSize == 0)
            throw new ArgumentException($"Invalid backbone attention: global blocks [{string.Join(", ", blocks)}] need a window size (without one every block is global)");
        foreach (var b in blocks)
            if (b < 0 || b >= depth) throw new ArgumentException($"Invalid backbone attention: global block {b} is not a block of a ViT of depth {depth} (0..{depth - 1})");
        if (blocks.Distinct().Count() != blocks.Length) throw new ArgumentException($"Invalid backbone attention: global blocks [{string.Join(", ", blocks)}] repeat a block");
        return this;
    }

    /// <summary>One line for logs: <c>global attention</c>, or the window, the global blocks and whether relative positions are on.</summary>
    public string Describe() =>
        !TokenGrid ? "global attention (cls + patches)"
        : (WindowSize > 0 ? $"window attention {WindowSize}x{WindowSize}, global blocks [{string.Join(",", GlobalBlocks)}]" : "global attention over the patch grid (no cls)")
          + (RelativePositions ? ", relative positions" : ", no relative positions");
}
