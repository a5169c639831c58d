using System.CommandLine;
using MaeMl.Interop;

namespace MaeMl.Cli;

/// <summary>The options <c>convert</c> and <c>inspect</c> share to build a <see cref="MaeLoadOptions"/>: the settings tensor shapes cannot tell.</summary>
public sealed class ModelFileOptions
{
    public Option<int?> Heads { get; } = new("--heads") { Description = "Encoder attention heads (not recorded in tensor shapes; known for the paper's ViT-B/L/H)." };
    public Option<int?> DecoderHeads { get; } = new("--decoder-heads") { Description = "Decoder attention heads (16 for the paper's 512-wide decoders)." };
    public Option<string?> Model { get; } = new Option<string?>(Vocabulary.Model) { Description = "Preset giving the heads and loss settings (see 'maeml info')." }.Legacy("--preset");
    public Option<string?> Key { get; } = new("--key") { Description = "Entry of a torch.save file holding the state dict (default: 'model', then 'state_dict', or a bare state dict)." };

    public void AddTo(Command command)
    {
        command.Options.Add(Heads);
        command.Options.Add(DecoderHeads);
        command.Options.Add(Model);
        command.Options.Add(Key);
    }

    public MaeLoadOptions Read(ParseResult parse) => new()
    {
        NumHeads = parse.GetValue(Heads), DecoderNumHeads = parse.GetValue(DecoderHeads),
        Preset = parse.GetValue(Model), CheckpointKey = parse.GetValue(Key),
    };
}
