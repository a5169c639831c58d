using System.CommandLine;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Visualization;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml reconstruct</c>: the paper's reconstruction figure from a checkpoint.</summary>
public static class ReconstructCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Model checkpoint (.maeml)", Required = true };
        var images = new Option<string[]>("--images") { Description = "Image files, or folders (their first --count images)", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Output PNG", DefaultValueFactory = _ => "reconstruction.png" };
        var count = new Option<int>("--count") { Description = "Images taken from each folder", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random mask", DefaultValueFactory = _ => 0 };
        var maskRatio = new Option<double?>("--mask-ratio") { Description = "Override the model's mask ratio" };
        var command = new Command("reconstruct", "Draw original | masked | reconstruction | reconstruction + visible for some images.")
        { checkpoint, images, output, count, seed, maskRatio };
        command.SetAction(r =>
        {
            var paths = ExpandImages(r.GetValue(images)!, r.GetValue(count));
            try
            {
                using var model = ModelFiles.LoadMae(r.GetValue(checkpoint)!);
                ReconstructionGrid.Write(model, paths, r.GetValue(output)!, r.GetValue(seed), r.GetValue(maskRatio));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException) { throw new CliException(e.Message); }
            Console.WriteLine($"wrote {r.GetValue(output)} ({paths.Count} images)");
            return 0;
        });
        return command;
    }

    /// <summary>Files as given; folders contribute up to <paramref name="perFolder"/> images spread over the folder.</summary>
    public static List<string> ExpandImages(IEnumerable<string> items, int perFolder)
    {
        var result = new List<string>();
        foreach (var item in items)
        {
            if (Directory.Exists(item))
            {
                var all = ImageFolder.Unlabelled(item).Samples;
                int take = Math.Min(perFolder, all.Count);
                result.AddRange(Enumerable.Range(0, take).Select(i => all[(int)((long)i * all.Count / take)].Path));
            }
            else if (File.Exists(item)) result.Add(item);
            else throw new CliException($"image or folder '{item}' does not exist");
        }
        if (result.Count == 0) throw new CliException("no images given");
        return result;
    }
}
