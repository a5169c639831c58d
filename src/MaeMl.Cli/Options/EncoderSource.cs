using System.CommandLine;
using MaeMl.Model;

namespace MaeMl.Cli;

/// <summary>The <c>--weights</c> / <c>--model</c> / <c>--seed</c> options of the commands that need an encoder
/// (<see cref="CliHelpers.LoadEncoder"/> loads it).</summary>
public sealed class EncoderSource
{
    public Option<string?> Weights { get; } = new Option<string?>(Vocabulary.Weights) { Description = "Weights file holding the encoder: .maeml, official .pth (also encoder-only) or safetensors." }.Legacy("--checkpoint").ShippedNames();
    public Option<string?> Model { get; } = new(Vocabulary.Model) { Description = "Preset of a randomly initialised encoder (no --weights), e.g. mae_vit_tiny_patch4_img32." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the random initialisation with --model.", DefaultValueFactory = _ => 0 };

    public void AddTo(Command command)
    {
        command.Options.Add(Weights);
        command.Options.Add(Model);
        command.Options.Add(Seed);
    }

    /// <summary>The model (eval mode) and a one-line description of where it came from.</summary>
    public (MaskedAutoencoderViT Model, string Description) Load(ParseResult parse) =>
        CliHelpers.LoadEncoder(parse.GetValue(Weights), parse.GetValue(Model), parse.GetValue(Seed));
}
