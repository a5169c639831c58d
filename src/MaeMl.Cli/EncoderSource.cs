using System.CommandLine;
using MaeMl.Cli.Commands;
using MaeMl.Model;
using TorchSharp;

namespace MaeMl.Cli;

/// <summary>
/// The <c>--checkpoint</c> / <c>--model</c> / <c>--seed</c> options shared by the commands that need an encoder, and the one
/// place that loads it (swap in other checkpoint formats here).
/// </summary>
public sealed class EncoderSource
{
    public Option<string?> Checkpoint { get; } = new("--checkpoint") { Description = "Model file holding the encoder weights: .maeml, official .pth (also encoder-only) or safetensors." };
    public Option<string?> Model { get; } = new("--model") { Description = "Preset for a randomly initialised encoder (no --checkpoint), e.g. mae_vit_tiny_patch4_img32." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the random initialisation with --model.", DefaultValueFactory = _ => 0 };

    public void AddTo(Command command)
    {
        command.Options.Add(Checkpoint);
        command.Options.Add(Model);
        command.Options.Add(Seed);
    }

    /// <summary>The model (eval mode) and a one-line description of where it came from.</summary>
    public (MaskedAutoencoderViT Model, string Description) Load(ParseResult parse)
    {
        var checkpoint = parse.GetValue(Checkpoint);
        var preset = parse.GetValue(Model);
        if ((checkpoint is null) == (preset is null)) throw new CliException("give either --checkpoint FILE or --model PRESET (random initialisation)");
        MaskedAutoencoderViT model;
        string description;
        if (checkpoint is not null)
        {
            model = ModelFiles.LoadMae(checkpoint, new MaeMl.Interop.MaeLoadOptions { AllowMissingDecoder = true });
            description = $"checkpoint {checkpoint}";
        }
        else
        {
            MaeConfig config;
            try { config = MaePresets.Get(preset!); }
            catch (ArgumentException e) { throw new CliException(e.Message); }
            torch.manual_seed(parse.GetValue(Seed));
            model = new MaskedAutoencoderViT(config);
            description = $"random init {preset} (seed {parse.GetValue(Seed)})";
        }
        model.eval();
        var c = model.Config;
        return (model, $"{description}: img {c.ImageSize}, patch {c.PatchSize}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads)");
    }
}
