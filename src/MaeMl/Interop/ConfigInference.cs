using MaeMl.Model;

namespace MaeMl.Interop;

/// <summary>What the tensor shapes of an official-named state dict say about the architecture.</summary>
public sealed record InferredShapes
{
    /// <summary>Encoder width D (from <c>cls_token</c> / the patch projection).</summary>
    public int EmbedDim { get; init; }
    /// <summary>Encoder blocks (the highest <c>blocks.N</c> + 1).</summary>
    public int Depth { get; init; }
    /// <summary>Patch side p (the patch projection kernel).</summary>
    public int PatchSize { get; init; }
    /// <summary>Input channels (the patch projection).</summary>
    public int InChans { get; init; }
    /// <summary>From the position table (square grid + one cls row); null when the file has none.</summary>
    public int? ImageSize { get; init; }
    /// <summary>MLP hidden width over D (from <c>blocks.0.mlp.fc1</c>).</summary>
    public double MlpRatio { get; init; } = 4.0;
    /// <summary>True when the file has decoder tensors (official <c>mae_visualize_*</c>, Hugging Face <c>ViTMAEForPreTraining</c>).</summary>
    public bool HasDecoder { get; init; }
    /// <summary>Decoder width (0 without a decoder).</summary>
    public int DecoderEmbedDim { get; init; }
    /// <summary>Decoder blocks (0 without a decoder).</summary>
    public int DecoderDepth { get; init; }
    /// <summary>Classes of the fine-tuned head (<c>head.weight</c> rows), or null.</summary>
    public int? NumClasses { get; init; }
    /// <summary>Fine-tuned with global pooling (<c>fc_norm</c> present).</summary>
    public bool HasFcNorm { get; init; }
}

/// <summary>
/// Reads width, depth, patch size, channels, image size, MLP ratio and the decoder's width and depth from tensor shapes,
/// and takes the attention heads (which no shape records) from options, a preset, a template, a Hugging Face
/// <c>config.json</c>, or the paper architecture with the same shapes, saying so when none gives them.
/// </summary>
internal static class ConfigInference
{
    /// <summary>Shape facts of an official-named state dict; throws naming <paramref name="file"/> when it is no ViT.</summary>
    public static InferredShapes ReadShapes(IReadOnlyDictionary<string, long[]> shapes, string file)
    {
        if (!shapes.TryGetValue("patch_embed.proj.weight", out var proj) || proj.Length != 4)
            throw new InvalidDataException($"'{file}' is not a MAE / ViT checkpoint: it has no patch_embed.proj.weight [D, C, p, p] " +
                $"(first tensors: {string.Join(", ", shapes.Keys.Take(5))})");
        int embed = (int)proj[0], patch = (int)proj[2];
        int? image = null;
        if (shapes.TryGetValue("pos_embed", out var pos) && pos.Length == 3)
            image = PositionEmbeddingInterpolation.GridSide(pos[1]) is { } g ? g * patch
                : throw new InvalidDataException($"'{file}': pos_embed has {pos[1]} rows, not one cls row plus a square grid");
        double mlp = shapes.TryGetValue("blocks.0.mlp.fc1.weight", out var fc1) ? (double)fc1[0] / embed : 4.0;
        bool hasDecoder = shapes.ContainsKey("decoder_embed.weight");
        return new InferredShapes
        {
            EmbedDim = embed, PatchSize = patch, InChans = (int)proj[1], ImageSize = image, MlpRatio = mlp,
            Depth = CountBlocks(shapes.Keys, "blocks."),
            HasDecoder = hasDecoder,
            DecoderEmbedDim = hasDecoder ? (int)shapes["decoder_embed.weight"][0] : 0,
            DecoderDepth = CountBlocks(shapes.Keys, "decoder_blocks."),
            NumClasses = shapes.TryGetValue("head.weight", out var head) ? (int)head[0] : null,
            HasFcNorm = shapes.ContainsKey("fc_norm.weight"),
        };
    }

    static int CountBlocks(IEnumerable<string> names, string prefix) =>
        (int)Math.Min(int.MaxValue, names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => BlockNumber(n, prefix) + 1).DefaultIfEmpty(0).Max());

    static long BlockNumber(string name, string prefix)
    {
        int dot = name.IndexOf('.', prefix.Length);
        return long.TryParse(dot < 0 ? name.AsSpan(prefix.Length) : name.AsSpan(prefix.Length, dot - prefix.Length), out var i) && i >= 0 ? Math.Min(i, int.MaxValue - 1) : -1;
    }

    /// <summary>
    /// Refuses a configuration whose blocks need far more weights than the file holds: block counts come from tensor
    /// names, so one stray or forged name (<c>decoder_blocks.1000000.norm1.weight</c>) would otherwise make the reader
    /// build a model of any size before the strict load could complain. Only what the shapes decided is checked (a decoder
    /// taken from a preset for an encoder-only file is not).
    /// </summary>
    public static void CheckAgainstTensors(MaeConfig config, InferredShapes s, IReadOnlyDictionary<string, long[]> shapes, string file, bool withDecoder = true)
    {
        double present = shapes.Values.Sum(shape => shape.Aggregate(1.0, (a, d) => a * Math.Max(0, d)));
        void Check(string prefix, int depth, int dim)
        {
            double needed = Checkpoints.MaeCheckpoint.BlockWeights(depth, dim, config.MlpRatio);
            if (needed <= 2 * present + 4e6) return;
            var highest = shapes.Keys.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).MaxBy(n => BlockNumber(n, prefix));
            throw new InvalidDataException($"'{file}': its tensor names ask for {depth} blocks {dim} wide under '{prefix}' (from '{highest}'), " +
                $"{needed:G3} weights, but the file holds {present:G3} values in all; refused rather than building a model of that size");
        }
        Check("blocks.", config.Depth, config.EmbedDim);
        if (withDecoder && s.HasDecoder) Check("decoder_blocks.", config.DecoderDepth, config.DecoderEmbedDim);
    }

    /// <summary>
    /// The MAE configuration of a file: shapes from the file, everything else from <paramref name="options"/>
    /// (<see cref="MaeLoadOptions.Template"/>, <see cref="MaeLoadOptions.Preset"/>), the Hugging Face
    /// <paramref name="fileConfig"/>, or defaults. Appends where the heads came from to <paramref name="notes"/>.
    /// </summary>
    /// With <c>encoderOnly</c> (a classifier) decoder settings come from the defaults, unreported.
    public static MaeConfig InferMae(InferredShapes s, string file, MaeLoadOptions options, MaeConfig? fileConfig, IList<string> notes, bool encoderOnly = false)
    {
        var preset = options.Preset is null ? null : MaePresets.Get(options.Preset);
        var paper = MaePresets.All.FirstOrDefault(p =>
        {
            var c = p.Value();
            return c.EmbedDim == s.EmbedDim && c.Depth == s.Depth && c.PatchSize == s.PatchSize;
        });
        var paperConfig = paper.Value?.Invoke();
        var baseConfig = options.Template ?? preset ?? fileConfig ?? new MaeConfig();

        int heads = Pick("encoder heads", notes, (options.NumHeads, "options"), (preset?.NumHeads, $"preset {options.Preset}"),
                         (options.Template?.NumHeads, "template"), (fileConfig?.NumHeads, "config.json"),
                         (paperConfig?.NumHeads, $"the {paper.Key} architecture, same width, depth and patch"))
            ?? throw new InvalidDataException(
                $"'{file}': the number of encoder attention heads cannot be read from tensor shapes (encoder {s.EmbedDim} wide, {s.Depth} blocks, patch {s.PatchSize}, " +
                "no known architecture of that shape); pass it (MaeLoadOptions.NumHeads, CLI --heads) or a preset (MaeLoadOptions.Preset, CLI --preset)");

        if (encoderOnly) notes = new List<string>(notes);   // decoder notes go to a throw-away copy
        int decoderDim = s.HasDecoder ? s.DecoderEmbedDim : baseConfig.DecoderEmbedDim;
        int decoderDepth = s.HasDecoder ? s.DecoderDepth : baseConfig.DecoderDepth;
        bool paperDecoder = paperConfig is not null && paperConfig.DecoderEmbedDim == decoderDim;
        int? decoderHeads = Pick("decoder heads", notes, (options.DecoderNumHeads, "options"), (preset?.DecoderNumHeads, $"preset {options.Preset}"),
                                 (options.Template?.DecoderNumHeads, "template"), (fileConfig?.DecoderNumHeads, "config.json"),
                                 (paperDecoder ? paperConfig!.DecoderNumHeads : null, $"the {paper.Key} architecture"));
        if (decoderHeads is null && !s.HasDecoder)
        {
            decoderHeads = baseConfig.DecoderNumHeads;
            notes.Add($"decoder heads: {decoderHeads} (default; the file has no decoder)");
        }
        if (decoderHeads is null)
            throw new InvalidDataException(
                $"'{file}': the number of decoder attention heads cannot be read from tensor shapes (decoder {decoderDim} wide, {decoderDepth} blocks); " +
                "pass it (MaeLoadOptions.DecoderNumHeads, CLI --decoder-heads) or a preset (CLI --preset)");

        var config = baseConfig with
        {
            EmbedDim = s.EmbedDim, Depth = s.Depth, PatchSize = s.PatchSize, InChans = s.InChans,
            ImageSize = options.ImageSize ?? s.ImageSize ?? baseConfig.ImageSize,
            MlpRatio = s.MlpRatio, NumHeads = heads,
            DecoderEmbedDim = decoderDim, DecoderDepth = decoderDepth, DecoderNumHeads = decoderHeads.Value,
        };
        try { return config.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"'{file}': the inferred configuration is not usable: {e.Message}", e); }
    }

    /// <summary>The first candidate with a value, noted with its source.</summary>
    static int? Pick(string what, IList<string> notes, params (int? Value, string Source)[] candidates)
    {
        foreach (var (value, source) in candidates)
            if (value is { } v)
            {
                notes.Add($"{what}: {v} (from {source})");
                return v;
            }
        return null;
    }
}
