using MaeMl.Model;
using MaeMl.Training;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>What the ML.NET detection and segmentation trainers share: the image column, the ViT and its starting weights, the
/// feature pyramid, the training settings, the seed, where the ONNX model goes, the scoring device, logging and cancellation.</summary>
public abstract record MaeDenseTrainerOptions
{
    /// <summary>Image column (<see cref="Microsoft.ML.Data.MLImage"/>, e.g. from <c>LoadImages</c>).</summary>
    public string ImageColumnName { get; init; } = "Image";
    /// <summary>ViT architecture; its <see cref="MaeConfig.InputSize"/> (W x H: <see cref="MaeConfig.ImageSize"/>, and <see cref="MaeConfig.ImageHeight"/>
    /// when not square; segmentation only) is the model's input size (images, and masks, are stretched to it).</summary>
    public MaeConfig Encoder { get; init; } = MaePresets.MaeVitTinyPatch4Img32Dec128d2b with { ImageSize = 64 };
    /// <summary>MAE / encoder file whose encoder initialises the ViT, or the name of a shipped model (<c>cifar10-vit-tiny</c>); null: random initialisation.</summary>
    public string? PretrainedEncoderFile { get; init; }
    /// <summary>Channels of the simple feature pyramid (and of the head).</summary>
    public int PyramidChannels { get; init; } = 64;
    /// <summary>Pyramid scales relative to the patch grid (ViTDet: 4, 2, 1, 0.5); null for the task's default.</summary>
    public double[]? PyramidScales { get; init; }
    /// <summary>How the ViT's blocks attend: null for global attention everywhere, or ViTDet's windows and relative positions
    /// (<see cref="BackboneAttention.VitDet"/>).</summary>
    public BackboneAttention? Attention { get; init; }
    /// <summary>Epochs, batch size, learning rates, flips and time limit of training (its <see cref="DenseTrainingOptions.Seed"/> is
    /// replaced by <see cref="Seed"/>).</summary>
    public DenseTrainingOptions Training { get; init; } = new();
    /// <summary>Seed of initialisation, data order and flips. Null (default): drawn from the <see cref="MLContext"/> the trainer was
    /// created from, so <c>new MLContext(seed: 1)</c> makes the run reproducible.</summary>
    public int? Seed { get; init; }
    /// <summary>Where the trained model's ONNX file is written (null: nowhere, it is kept in memory). The fitted ML.NET model embeds it;
    /// <c>ApplyMaeDetector</c> / <c>ApplyMaeSegmenter</c> build the same chain from the file.</summary>
    public string? OnnxModelFile { get; init; }
    /// <summary>CUDA device for scoring with ONNX Runtime (needs the <c>Microsoft.ML.OnnxRuntime.Gpu</c> native package), or null for
    /// the CPU. Training runs in TorchSharp on the CPU.</summary>
    public int? GpuDeviceId { get; init; }
    /// <summary>Score on the CPU when the GPU cannot be used (also when the CPU-only ONNX Runtime package is referenced). Default true.</summary>
    public bool FallbackToCpu { get; init; } = true;
    /// <summary>Progress lines also go here (they always go to <c>MLContext.Log</c>). Null: only the context's log.</summary>
    public ILogger? Logger { get; init; }
    /// <summary>Stops training early (as <c>MLContext.CancelExecution()</c> does): <c>Fit</c> throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; init; }
}

/// <summary>The steps the ML.NET detection and segmentation trainers' <c>Fit</c> share around their own data reading: the cancellation
/// watch, the model built on the seed and started from the pretrained encoder, training, and the ONNX model written and served.</summary>
internal static class DenseFit
{
    /// <summary>Watches the catalog's context and the options' token; throws when either is cancelled already.</summary>
    public static MLNetHost.Cancellation Start(MLNetHost host, MaeDenseTrainerOptions o)
    {
        var cancel = host.Watch(o.CancellationToken);
        if (host.IsCanceled) { cancel.Dispose(); throw new OperationCanceledException("MLContext.CancelExecution() was called before Fit"); }
        if (o.CancellationToken.IsCancellationRequested) { cancel.Dispose(); o.CancellationToken.ThrowIfCancellationRequested(); }
        return cancel;
    }

    /// <summary>Builds the model on <paramref name="seed"/> (initialisation; training seeds again for data order and flips), loads the
    /// pretrained encoder when there is one, trains, and returns the model in eval mode (disposed when anything fails).</summary>
    public static TModel Train<TModel>(MaeDenseTrainerOptions o, int seed, Func<TModel> build, Func<TModel, Model.VisionTransformer> vit,
        Func<TModel, DenseTrainingResult> train, Action<string> log) where TModel : TorchSharp.torch.nn.Module
    {
        TorchSharp.torch.manual_seed(seed);
        var model = build();
        try
        {
            if (o.PretrainedEncoderFile is not null)
            {
                using var mae = Interop.MaeModelFile.LoadMae(Pretrained.MaePretrained.ResolveExisting(o.PretrainedEncoderFile, "pretrained encoder file"),
                    new Interop.MaeLoadOptions { AllowMissingDecoder = true });
                vit(model).LoadEncoder(mae.state_dict().Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value));
            }
            var result = train(model);
            log($"trained {result.Steps} steps in {result.Seconds:F0} s (seed {seed})" + (result.StoppedByTimeLimit ? ", stopped at the time limit" : ""));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>Writes the exported model to <see cref="MaeDenseTrainerOptions.OnnxModelFile"/> when asked and resolves the scoring device.</summary>
    public static int? Serve(MaeDenseTrainerOptions o, byte[] onnx, string what, Action<string, LogLevel> log)
    {
        if (o.OnnxModelFile is { } file) Files.AtomicFile.Write(file, stream => stream.Write(onnx));
        log(what, LogLevel.Information);
        return OnnxDevice.Resolve(o.GpuDeviceId, o.FallbackToCpu, m => log(m, LogLevel.Warning));
    }
}
