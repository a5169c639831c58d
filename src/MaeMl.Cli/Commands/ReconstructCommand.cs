using System.CommandLine;
using MaeMl.Visualization;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml reconstruct</c>: the paper's reconstruction figure from a weights file.</summary>
public static class ReconstructCommand
{
    public static Command Create()
    {
        var weights = new Option<string>(Vocabulary.Weights) { Description = "MAE weights with the decoder (.maeml, official .pth or safetensors).", Required = true }.Legacy("--checkpoint").ShippedNames();
        var images = new Option<string[]>(Vocabulary.Data) { Description = "Image files, or folders (their first --count images).", Required = true, AllowMultipleArgumentsPerToken = true }.Legacy("--images");
        var output = new Option<string>(Vocabulary.Out) { Description = "Output PNG.", DefaultValueFactory = _ => "reconstruction.png" };
        var count = new Option<int>("--count") { Description = "Images taken from each folder.", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random mask.", DefaultValueFactory = _ => 0 };
        var maskRatio = new Option<double?>("--mask-ratio") { Description = "Override the model's mask ratio." };
        var threads = Vocabulary.ThreadsOption();
        var command = new Command("reconstruct", "Draw original | masked | reconstruction | reconstruction + visible for some images.")
        { weights, images, output, count, seed, maskRatio, threads };
        command.SetAction(r =>
        {
            Vocabulary.ApplyThreads(r.GetValue(threads));
            var paths = CliHelpers.ExpandImages(r.GetValue(images)!, r.GetValue(count));
            using var model = CliHelpers.LoadMae(r.GetValue(weights)!);
            ReconstructionGrid.Write(model, paths, r.GetValue(output)!, r.GetValue(seed), r.GetValue(maskRatio));
            Console.WriteLine($"wrote {r.GetValue(output)} ({paths.Count} images)");
            return 0;
        });
        return command;
    }
}
