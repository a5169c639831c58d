using MaeMl.Onnx;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SkiaSharp;

namespace MaeMl.MLNet;

/// <summary>
/// Batched featurization with an encoder ONNX file, straight on ONNX Runtime: many images per call, which is much faster
/// than an ML.NET pipeline (ML.NET scores one row at a time). Use <see cref="MaeEncoderCatalog.ApplyMaeEncoder(Microsoft.ML.TransformsCatalog, MaeEncoderOptions)"/>
/// inside ML.NET pipelines (training, saving, serving with PredictionEngine); use this class to featurize a data set once,
/// for example before training a classifier on the stored embeddings. Images of another size are resized like ML.NET's
/// IsoCrop (shorter side to the size, centre cut) with SkiaSharp; results can differ slightly from ML.NET's resize.
/// Calls may run concurrently (ONNX Runtime sessions are thread-safe); one call already uses all cores for each batch.
/// </summary>
public sealed class MaeEncoder : IDisposable
{
    readonly InferenceSession session;
    readonly string outputName;

    /// <summary>The model's input and outputs.</summary>
    public EncoderOnnxModelInfo Model { get; }

    /// <summary>The embedding this encoder returns.</summary>
    public EncoderPooling Pooling { get; }

    /// <summary>Values per image of the embedding.</summary>
    public int EmbeddingSize { get; }

    /// <summary>"CUDA" or "CPU": where the session runs.</summary>
    public string ExecutionProvider { get; }

    MaeEncoder(EncoderOnnxModelInfo model, EncoderPooling pooling, InferenceSession session, string provider)
    {
        Model = model;
        Pooling = pooling;
        this.session = session;
        outputName = EncoderOnnxNames.Output(pooling);
        EmbeddingSize = model.OutputSize(pooling);
        ExecutionProvider = provider;
    }

    /// <summary>Opens an encoder ONNX file.</summary>
    /// <param name="modelFile">File written by <see cref="VitEncoderOnnxExporter"/>, with preprocessing.</param>
    /// <param name="pooling">The embedding to return; the file must contain it.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU. The GPU build of ONNX Runtime 1.31 needs CUDA 13 and cuDNN 9.</param>
    /// <param name="fallbackToCpu">Use the CPU when CUDA cannot be used; otherwise rethrow.</param>
    /// <param name="intraOpThreads">Threads per operator; 0 lets ONNX Runtime choose (all cores).</param>
    public static MaeEncoder Open(string modelFile, EncoderPooling pooling = EncoderPooling.Cls, int? gpuDeviceId = null, bool fallbackToCpu = true, int intraOpThreads = 0)
    {
        var info = EncoderOnnxModelInfo.Read(modelFile);
        info.RequireOutput(pooling);
        if (!info.IncludesPreprocessing)
            throw new ArgumentException($"The encoder model '{modelFile}' was exported without preprocessing; MaeEncoder feeds 0..255 pixels", nameof(modelFile));
        SessionOptions? options = null;
        string provider = "CPU";
        if (OnnxDevice.Resolve(gpuDeviceId, fallbackToCpu) is int device)
        {
            try
            {
                options = SessionOptions.MakeSessionOptionWithCudaProvider(device);
                provider = "CUDA";
            }
            catch (Exception e) when (fallbackToCpu && e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                options = null;
            }
        }
        options ??= new SessionOptions();
        if (intraOpThreads > 0) options.IntraOpNumThreads = intraOpThreads;
        try
        {
            return new MaeEncoder(info, pooling, new InferenceSession(modelFile, options), provider);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime could not load the encoder model '{modelFile}': {e.Message}", e);
        }
        finally { options.Dispose(); }
    }

    /// <summary>Embeddings of images (any size; resized as described on the class), <paramref name="batchSize"/> per run.</summary>
    public float[][] Embed(IReadOnlyList<MLImage> images, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(images);
        return EmbedBatches(images.Count, batchSize, (i, buffer) => ToRgbPlanes(images[i], Model.ImageSize, buffer));
    }

    /// <summary>Embeddings of image files (decoded with SkiaSharp), <paramref name="batchSize"/> per run.</summary>
    public float[][] EmbedFiles(IReadOnlyList<string> paths, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return EmbedBatches(paths.Count, batchSize, (i, buffer) =>
        {
            using var image = MLImage.CreateFromFile(paths[i]);
            ToRgbPlanes(image, Model.ImageSize, buffer);
        });
    }

    /// <summary>Embeddings of <paramref name="count"/> images given as RGB planes (0..255) at the model's size, back to back
    /// ([count, 3, S, S]); returns [count * <see cref="EmbeddingSize"/>] values. One ONNX Runtime run.</summary>
    public float[] EmbedPixels(float[] pixels, int count)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != count * Model.PixelCount)
            throw new ArgumentException($"Expected {count} x {Model.PixelCount} pixel values (3x{Model.ImageSize}x{Model.ImageSize} planes per image), got {pixels.Length}", nameof(pixels));
        var input = new DenseTensor<float>(pixels, [count, Model.InChans, Model.ImageSize, Model.ImageSize]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(Model.InputName, input)], [outputName]);
        var output = (DenseTensor<float>)results[0].AsTensor<float>();
        return output.Buffer.ToArray();
    }

    float[][] EmbedBatches(int count, int batchSize, Action<int, Span<float>> fill)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1");
        var result = new float[count][];
        int per = Model.PixelCount;
        for (int start = 0; start < count; start += batchSize)
        {
            int n = Math.Min(batchSize, count - start);
            var pixels = new float[n * per];
            for (int i = 0; i < n; i++) fill(start + i, pixels.AsSpan(i * per, per));
            var flat = EmbedPixels(pixels, n);
            for (int i = 0; i < n; i++) result[start + i] = flat.AsSpan(i * EmbeddingSize, EmbeddingSize).ToArray();
        }
        return result;
    }

    /// <summary>Writes the RGB planes (0..255, [3, size, size]) of an image, resized like IsoCrop (shorter side to
    /// <paramref name="size"/>, centre cut) with SkiaSharp when its size differs.</summary>
    public static void ToRgbPlanes(MLImage image, int size, Span<float> planes)
    {
        ArgumentNullException.ThrowIfNull(image);
        int s = size;
        if (planes.Length != 3 * s * s) throw new ArgumentException($"Need room for 3x{s}x{s} values, got {planes.Length}", nameof(planes));
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        if (image.Width == s && image.Height == s)
        {
            Planes(image.Pixels, bgra, s, planes);
            return;
        }
        using var source = ImagePixels.ToBitmap(image);
        float scale = (float)s / Math.Min(image.Width, image.Height);
        float w = image.Width * scale, h = image.Height * scale;
        using var target = new SKBitmap(new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(target))
        using (var paint = new SKPaint { FilterQuality = SKFilterQuality.High, IsAntialias = true })
            canvas.DrawBitmap(source, SKRect.Create((s - w) / 2, (s - h) / 2, w, h), paint);
        Planes(target.GetPixelSpan(), bgra: false, s, planes);
    }

    static void Planes(ReadOnlySpan<byte> pixels, bool bgra, int s, Span<float> planes)
    {
        int area = s * s;
        int r = bgra ? 2 : 0, b = bgra ? 0 : 2;
        for (int i = 0; i < area; i++)
        {
            planes[i] = pixels[4 * i + r];
            planes[area + i] = pixels[4 * i + 1];
            planes[2 * area + i] = pixels[4 * i + b];
        }
    }

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose() => session.Dispose();
}
