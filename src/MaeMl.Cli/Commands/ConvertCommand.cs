using System.CommandLine;
using MaeMl.Checkpoints;
using MaeMl.Interop;

namespace MaeMl.Cli.Commands;

/// <summary>
/// <c>maeml convert --weights A --out B</c>: between official / Hugging Face <c>.pth</c>, <c>.safetensors</c> and MaeMl
/// <c>.maeml</c> checkpoints, the target format chosen by extension. To <c>.pth</c> / <c>.safetensors</c> the tensors are
/// renamed only (any MAE, encoder-only or fine-tuned file); to <c>.maeml</c>, or with <c>--image-size</c>, a MAE model is
/// built and loaded strictly (heads needed).
/// </summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var from = new Option<string>(Vocabulary.Weights) { Description = "Weights file to convert (.pth, .safetensors, .maeml; recognised from its content).", Required = true }.Legacy("--from").ShippedNames();
        var to = new Option<string>(Vocabulary.Out) { Description = "File to write: .pth (official {'model': state_dict}), .safetensors or .maeml (format by extension).", Required = true }.Legacy("--to");
        var naming = new Option<string>("--naming") { Description = "Tensor names to write: official (models_mae / timm) or hf (Hugging Face ViTMAE).", DefaultValueFactory = _ => "official" };
        var imageSize = new Option<int?>("--image-size") { Description = "Resolution of the converted model: position tables are interpolated (bicubic)." };
        var nonStrict = new Option<bool>("--non-strict") { Description = "Load what matches and list the rest instead of failing." };
        var encoderOnly = new Option<bool>("--encoder-only") { Description = "Accept a file without decoder (official mae_pretrain_*): the decoder is initialised." };
        var threads = Vocabulary.ThreadsOption();
        var shared = new ModelFileOptions();
        var command = new Command("convert", "Convert MAE weights between official PyTorch .pth, safetensors (official or Hugging Face names) and MaeMl checkpoints.");
        foreach (var option in new Option[] { from, to, naming, imageSize, nonStrict, encoderOnly, threads }) command.Options.Add(option);
        shared.AddTo(command);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            string source = parse.GetValue(from)!, target = parse.GetValue(to)!;
            var names = parse.GetValue(naming)?.ToLowerInvariant() switch
            {
                "official" => StateDictNaming.Official,
                "hf" or "huggingface" => StateDictNaming.HuggingFace,
                var other => throw new CliException($"--naming must be 'official' or 'hf', got '{other}'"),
            };
            var options = shared.Read(parse) with
            {
                ImageSize = parse.GetValue(imageSize), Strict = !parse.GetValue(nonStrict), AllowMissingDecoder = parse.GetValue(encoderOnly),
            };
            var format = ModelFileFormats.FromExtension(target);
            if (format == ModelFileFormat.MaeMl || options.ImageSize is not null || !options.Strict)
            {
                using var model = MaeModelFile.Load(source, options, out var report);   // MAE, or a fine-tuned classifier
                Console.WriteLine(report);
                MaeModelFile.Save(model, target, names);
            }
            else
            {
                var state = MaeModelFile.ReadStateDict(source, options);
                try { MaeModelFile.SaveStateDict(state, target, names); }
                finally { foreach (var t in state.Values) t.Dispose(); }
                Console.WriteLine($"'{source}': {state.Count} tensors");
            }
            Console.WriteLine($"wrote '{target}' ({format}{(format == ModelFileFormat.MaeMl ? "" : $", {names} names")})");
            return 0;
        });
        return command;
    }
}
