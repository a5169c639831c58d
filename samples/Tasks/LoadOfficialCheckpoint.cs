using MaeMl.Interop;
using MaeMl.Visualization;

/// <summary>
/// Load Meta's published MAE weights, e.g. <c>mae_visualize_vit_large.pth</c> (encoder + decoder, for reconstructions),
/// <c>mae_pretrain_vit_base.pth</c> (encoder only) or <c>mae_finetuned_vit_base.pth</c> (classifier), or a Hugging Face
/// <c>ViTMAEForPreTraining</c> safetensors file. Nothing is executed from the pickle: it is validated before reading.
/// </summary>
static class LoadOfficialCheckpoint
{
    public static int Run(string[] args)
    {
        if (args.Length < 1) { Console.Error.WriteLine("usage: official-checkpoint FILE.pth|FILE.safetensors [--heads N --decoder-heads M] [IMAGE...]"); return 2; }
        // Heads cannot be read from tensor shapes: the paper's ViT-B/L/H are recognised, other shapes need them
        int? heads = null, decoderHeads = null;
        var images = new List<string>();
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i] == "--heads") heads = int.Parse(args[++i]);
            else if (args[i] == "--decoder-heads") decoderHeads = int.Parse(args[++i]);
            else images.Add(args[i]);
        }
        var info = MaeModelFile.Inspect(args[0]);
        Console.WriteLine($"{info.Path}: {info.Format}, {info.Naming} names, {info.Tensors.Count} tensors");
        foreach (var t in info.Tensors.Take(8)) Console.WriteLine($"  {t}");

        var options = new MaeLoadOptions { AllowMissingDecoder = true, NumHeads = heads, DecoderNumHeads = decoderHeads };
        var file = MaeModelFile.Load(args[0], options, out var report);
        Console.WriteLine(report);
        if (file is MaeMl.Model.MaskedAutoencoderViT mae && images.Count > 0)
        {
            ReconstructionGrid.Write(mae, images, "official-reconstruction.png");
            Console.WriteLine("wrote official-reconstruction.png");
        }
        (file as IDisposable)?.Dispose();

        // Save back in the official format (a PyTorch user loads it with models_mae unchanged) or as safetensors:
        //   MaeModelFile.Save(model, "mine.pth");  MaeModelFile.Save(model, "mine.safetensors");
        return 0;
    }
}
