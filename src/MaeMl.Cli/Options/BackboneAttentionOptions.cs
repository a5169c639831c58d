using System.CommandLine;
using System.Globalization;
using MaeMl.Model;

namespace MaeMl.Cli;

/// <summary>ViTDet's backbone attention on the dense commands (<c>detect-train</c>, <c>segment-train</c>, <c>dense-check</c>):
/// <c>--window-size</c>, <c>--global-blocks</c>, <c>--rel-pos</c>. ViTDet-B is <c>--window-size 14 --rel-pos</c> (global blocks
/// default to 2,5,8,11 for 12 blocks), with <c>--drop-path 0.1 --layer-decay 0.7</c> on the training commands.</summary>
public sealed class BackboneAttentionOptions
{
    public Option<int> WindowSize { get; } = new("--window-size")
    {
        Description = "ViTDet window attention: window side in patches (ViTDet: 14; the patch grid is zero-padded to a multiple of it), the cls token left out. 0 = global attention over cls + patches in every block, as MAE pretrains.",
        DefaultValueFactory = _ => 0,
    };
    public Option<string?> GlobalBlocks { get; } = new("--global-blocks")
    {
        Description = "With --window-size: comma-separated blocks (from 0) that attend over the whole grid; default ViTDet's last block of each quarter (2,5,8,11 of 12 blocks).",
    };
    public Option<bool> RelPos { get; } = new("--rel-pos")
    {
        Description = "ViTDet's decomposed relative position bias in every block (rel_pos_h / rel_pos_w, zero-initialised: MAE weights have none); also leaves the cls token out.",
    };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { WindowSize, GlobalBlocks, RelPos }) command.Options.Add(o);
    }

    /// <summary>The attention for a ViT of <paramref name="depth"/> blocks, or null for today's global backbone (no flag given).</summary>
    public BackboneAttention? Read(ParseResult parse, int depth)
    {
        int window = parse.GetValue(WindowSize);
        var list = parse.GetValue(GlobalBlocks);
        bool relPos = parse.GetValue(RelPos);
        if (window < 0) throw new CliException($"--window-size must be >= 0 (0 = global attention), got {window}");
        if (list is not null && window == 0) throw new CliException("--global-blocks needs --window-size (without windows every block is global)");
        if (window == 0 && !relPos) return null;
        var blocks = window == 0 ? [] : list is null ? BackboneAttention.VitDetGlobalBlocks(depth)
            : list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var b) ? b : throw new CliException($"invalid block '{s}' in --global-blocks")).ToArray();
        try { return new BackboneAttention { WindowSize = window, GlobalBlocks = blocks, RelativePositions = relPos }.Validate(depth); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }
}
