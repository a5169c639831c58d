using System.CommandLine;
using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Training;
using MaeMl.Visualization;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml quickstart</c>: the README's main job on the bundled images - pretrain a small MAE for about a
/// minute, then draw reconstructions of held-out images.</summary>
public static class QuickstartCommand
{
    public static Command Create()
    {
        var data = new Option<string>(Vocabulary.Data) { Description = "Folder with train/ and test/ image folders.", DefaultValueFactory = _ => Path.Combine("samples", "data", "cifar10-mini") };
        var output = new Option<string>(Vocabulary.Out) { Description = "Output folder: the pretraining run, reconstruction.png and loss-curve.png.", DefaultValueFactory = _ => Path.Combine("runs", "quickstart") };
        var timeLimit = new Option<string>("--time-limit") { Description = "Training time budget, e.g. 60s or 2m.", DefaultValueFactory = _ => "60s" }.Legacy("--seconds");
        var threads = Vocabulary.ThreadsOption();
        var command = new Command("quickstart", "Pretrain a small MAE on the bundled CIFAR-10 images for about a minute and write a reconstruction grid.")
        { data, output, timeLimit, threads };
        command.SetAction(r =>
        {
            var root = r.GetValue(data)!;
            var train = Path.Combine(root, "train");
            if (!Directory.Exists(train)) throw new CliException($"'{train}' does not exist: run from the repository root or pass {Vocabulary.Data}");
            var outDir = r.GetValue(output)!;
            // the quickstart's own short recipe (a minute of a 400-epoch default schedule would not leave warmup)
            var options = new PretrainOptions
            {
                DataDir = train, OutputDir = outDir, Model = MaePresets.MaeVitTinyPatch4Img32Dec128d2b,
                Epochs = 60, WarmupEpochs = 5, BatchSize = 32, Lr = 1e-3, MinLr = 1e-5, Seed = 0,
                TimeLimit = CliHelpers.Duration(r.GetValue(timeLimit)), Precision = TrainingPrecision.Auto, Threads = r.GetValue(threads),
            };
            CliHelpers.RunPretraining(options);
            var grid = Path.Combine(outDir, "reconstruction.png");
            using var model = MaeCheckpoint.LoadModel(Path.Combine(outDir, Pretrainer.LastCheckpointName));
            ReconstructionGrid.Write(model, CliHelpers.ExpandImages(new[] { Path.Combine(root, "test") }, 8), grid);
            Console.WriteLine($"wrote {grid} and {Path.Combine(outDir, "loss-curve.png")}");
            return 0;
        });
        return command;
    }
}
