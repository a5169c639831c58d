using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Training;
using MaeMl.Visualization;

/// <summary>Pretrain a MAE on a folder of your own images (labels, if any, are ignored) and look at its reconstructions.</summary>
static class PretrainOnYourImages
{
    public static int Run(string[] args)
    {
        if (args.Length < 1) { Console.Error.WriteLine("usage: pretrain IMAGE_FOLDER [OUT]"); return 2; }
        var output = args.Length > 1 ? args[1] : Path.Combine("runs", "sample-pretrain");
        var options = new PretrainOptions
        {
            DataDir = args[0],
            OutputDir = output,
            // 32x32 inputs, 4x4 patches; for photos use e.g. MaePresets.MaeVitBasePatch16Dec512d8b (224x224)
            Model = MaePresets.MaeVitTinyPatch4Img32Dec128d2b,
            Epochs = 20, WarmupEpochs = 2, BatchSize = 64, BaseLr = 1.5e-4 * 8,   // short run: a larger lr than the paper's 1.5e-4
            Precision = TrainingPrecision.BFloat16,                              // float32 master weights; fast on AVX512-BF16/AMX CPUs
            TimeLimit = TimeSpan.FromMinutes(2),                                 // stops cleanly; run again with Resume = "auto" to continue
            Resume = "auto",
        };
        var result = new Pretrainer(options).Run();
        Console.WriteLine($"{result.EpochsDone} epochs, loss {result.LastEpochLoss:F4}, checkpoint {result.CheckpointPath}");

        using var mae = MaeCheckpoint.LoadModel(result.CheckpointPath);
        var images = Directory.EnumerateFiles(args[0], "*.*", SearchOption.AllDirectories)
            .Where(f => MaeMl.Data.ImageFolder.Extensions.Contains(Path.GetExtension(f))).Order().Take(6).ToList();
        ReconstructionGrid.Write(mae, images, Path.Combine(output, "reconstruction.png"));
        Console.WriteLine($"see {Path.Combine(output, "reconstruction.png")} and {Path.Combine(output, "loss-curve.png")}");
        return 0;
    }
}
