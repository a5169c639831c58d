using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>Builds the <see cref="VisionTransformer"/> a fine-tuning or linear-probing run starts from: pretrained weights
/// (any file <see cref="MaeModelFile.LoadClassifier(string, MaeLoadOptions?)"/> reads) or a fresh architecture.</summary>
internal static class ClassifierInitialization
{
    /// <summary>
    /// A classifier with a new head of <paramref name="numClasses"/> (trunc-normal std 2e-5, as <c>main_finetune.py</c>). From
    /// <paramref name="init"/> the encoder weights are loaded (the decoder and, with global pooling, the pretrained <c>norm</c> are
    /// ignored, a head of another size is replaced); otherwise <paramref name="architecture"/> is initialised from the current torch seed.
    /// </summary>
    /// <param name="init">Weight file, or null for training from scratch.</param>
    /// <param name="architecture">Architecture from scratch; with <paramref name="init"/> it supplies the attention heads when the file cannot.</param>
    /// <param name="numClasses">Classes of the head.</param>
    /// <param name="globalPool">Mean pooling + fc_norm, or the cls token.</param>
    /// <param name="dropPath">Stochastic depth rate for training.</param>
    /// <param name="log">Receives where the weights came from.</param>
    public static VisionTransformer Create(string? init, MaeConfig? architecture, int numClasses, bool globalPool, double dropPath, Action<string>? log = null)
    {
        if (numClasses < 2) throw new ArgumentException($"A classifier needs at least 2 classes, got {numClasses}");
        if (init is null)
        {
            if (architecture is null) throw new ArgumentException("Give starting weights or an architecture");
            log?.Invoke($"from scratch: {Describe(architecture)}");
            return new VisionTransformer(new VitClassifierConfig(architecture with { DropPath = dropPath }, numClasses, globalPool));
        }
        using var loaded = MaeModelFile.LoadClassifier(init, new MaeLoadOptions { NumClasses = numClasses, GlobalPool = globalPool, Template = architecture }, out var report);
        foreach (var note in report.Notes) log?.Invoke($"  {note}");
        var config = loaded.Config with { Encoder = loaded.Config.Encoder with { DropPath = dropPath } };
        var model = new VisionTransformer(config);
        using (no_grad())
        {
            var source = loaded.state_dict();
            foreach (var (name, p) in model.state_dict()) p.copy_(source[name]);
        }
        log?.Invoke($"initialised from {init}: {Describe(config.Encoder)}, {report.Loaded.Count} tensors loaded" +
                    (report.Initialised.Count > 0 ? $", new: {string.Join(", ", report.Initialised)}" : ""));
        return model;
    }

    static string Describe(MaeConfig c) => $"img {c.ImageSize}, patch {c.PatchSize}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads)";
}
