using MaeMl.Training;

/// <summary>Fine-tune a MAE-pretrained ViT on labelled class folders (root/&lt;class&gt;/*.jpg) with the official recipe
/// (layer-wise lr decay, drop path, label smoothing, warmup + cosine), then read the test accuracy.</summary>
static class FineTuneClassifier
{
    public static int Run(string[] args)
    {
        if (args.Length < 2) { Console.Error.WriteLine("usage: finetune TRAIN_FOLDER TEST_FOLDER [PRETRAINED=cifar10-vit-tiny] [OUT]"); return 2; }
        var init = args.Length > 2 ? args[2] : MaeMl.Pretrained.MaePretrained.WeightsPath("cifar10-vit-tiny");
        var options = FinetuneOptions.SmallImages(args[0], args.Length > 3 ? args[3] : Path.Combine("runs", "sample-finetune")) with
        {
            ValDir = args[1],
            Init = init,                // any .maeml / official .pth / safetensors MAE or ViT file; null trains from scratch
            Epochs = 3,
            TimeLimit = TimeSpan.FromMinutes(5),
        };
        var result = new Finetuner(options).Run();
        Console.WriteLine($"{result.EpochsDone} epochs; classes {string.Join(", ", result.ClassNames)}; checkpoint {result.CheckpointPath}");
        Console.WriteLine(result);
        return 0;
    }
}
