using MaeMl.Tests.Onnx;
using MaeMl.MLNet;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.MLNet;

/// <summary>The ML.NET featurizer on a tiny random encoder: parity with TorchSharp, save/load, trainers, errors.</summary>
public sealed class MaeEncoderMLNetTests : IDisposable
{
    const int Size = 16;
    readonly ITestOutputHelper output;
    readonly string dir = Path.Combine(Path.GetTempPath(), $"maeml-mlnet-{Guid.NewGuid():N}");
    readonly string modelFile;
    readonly MaeMl.Model.MaskedAutoencoderViT model;

    public MaeEncoderMLNetTests(ITestOutputHelper output)
    {
        this.output = output;
        Directory.CreateDirectory(dir);
        modelFile = Path.Combine(dir, "encoder.onnx");
        model = OnnxTestModels.RandomMae();
        VitEncoderOnnxExporter.Export(model, modelFile);
    }

    public void Dispose()
    {
        model.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    public sealed class ImageRow
    {
        [ImageType(Size, Size)] public MLImage Image { get; set; } = null!;
        public string Label { get; set; } = "";
    }

    public sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
    }

    /// <summary>Random RGBA images and the same pixels as a [N, 3, S, S] tensor.</summary>
    static (List<MLImage> Images, Tensor Pixels) RandomImages(int n, int seed, int size = Size)
    {
        var rng = new Random(seed);
        var images = new List<MLImage>();
        var planes = new float[n * 3 * size * size];
        for (int k = 0; k < n; k++)
        {
            var rgba = new byte[size * size * 4];
            for (int i = 0; i < size * size; i++)
            {
                for (int c = 0; c < 3; c++)
                {
                    var v = (byte)rng.Next(256);
                    rgba[4 * i + c] = v;
                    planes[((k * 3) + c) * size * size + i] = v;
                }
                rgba[4 * i + 3] = 255;
            }
            images.Add(MLImage.CreateFromPixels(size, size, MLPixelFormat.Rgba32, rgba));
        }
        return (images, tensor(planes).view(n, 3, size, size));
    }

    static float[][] Features(MLContext ml, IDataView data, string column = "Features") =>
        data.GetColumn<VBuffer<float>>(column).Select(v => v.DenseValues().ToArray()).ToArray();

    [Theory]
    [InlineData(EncoderPooling.Cls)]
    [InlineData(EncoderPooling.Mean)]
    [InlineData(EncoderPooling.Tokens)]
    public void InMemoryImagesMatchTorchSharp(EncoderPooling pooling)
    {
        var ml = new MLContext(seed: 1);
        var (images, pixels) = RandomImages(3, seed: 7);
        using var _ = pixels;
        var data = ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { Image = i }));
        var transformer = ml.Transforms.ApplyMaeEncoder("Features", "Image", modelFile, pooling).Fit(data);
        var transformed = transformer.Transform(data);
        var type = (VectorDataViewType)transformed.Schema["Features"].Type;
        using var expected = OnnxTestModels.Reference(model, pixels, pooling);
        Assert.Equal(expected.numel() / 3, type.Size);
        Assert.DoesNotContain(transformed.Schema, c => c.Name.StartsWith("mae_") || c.Name.StartsWith("MaeEncoder."));
        var actual = Features(ml, transformed).SelectMany(f => f).ToArray();
        var err = OnnxTestModels.MaxAbsDiff(expected, actual);
        output.WriteLine($"ML.NET {pooling} vs TorchSharp: max abs {err:E2} ({type})");
        Assert.InRange(err, 0, 1e-4);
    }

    [Fact]
    public void LoadImagesFromFilesAndSaveLoadRoundTripGiveIdenticalFeatures()
    {
        var ml = new MLContext(seed: 1);
        var (images, pixels) = RandomImages(4, seed: 11);
        using var _ = pixels;
        var rows = new List<PathRow>();
        for (int i = 0; i < images.Count; i++)
        {
            var path = Path.Combine(dir, $"img{i}.png");
            images[i].Save(path);
            rows.Add(new PathRow { ImagePath = path });
        }
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.ApplyMaeEncoder("Embedding", "Image", modelFile, EncoderPooling.Mean));
        var fitted = pipeline.Fit(data);
        var before = Features(ml, fitted.Transform(data), "Embedding");
        using var expected = OnnxTestModels.Reference(model, pixels, EncoderPooling.Mean);
        var err = OnnxTestModels.MaxAbsDiff(expected, before.SelectMany(f => f).ToArray());
        output.WriteLine($"LoadImages (png) mean pooling vs TorchSharp: max abs {err:E2}");
        Assert.InRange(err, 0, 1e-4);

        var zip = Path.Combine(dir, "pipeline.zip");
        ml.Model.Save(fitted, data.Schema, zip);
        File.Delete(modelFile);   // the saved pipeline carries the ONNX model
        var loaded = new MLContext().Model.Load(zip, out var loadedSchema);
        var after = Features(ml, loaded.Transform(data), "Embedding");
        Assert.Equal(before.Length, after.Length);
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], after[i]);
    }

    [Fact]
    public void FloatVectorInputAndBatchedEncoderAgreeWithThePipeline()
    {
        var ml = new MLContext(seed: 1);
        var (images, pixels) = RandomImages(5, seed: 3);
        using var _ = pixels;
        var flat = OnnxTestModels.ToArray(pixels);
        int per = 3 * Size * Size;
        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, per);
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 5).Select(i => new FeatureRow { Features = flat[(i * per)..((i + 1) * per)] }), schema);
        var viaVector = Features(ml, ml.Transforms.ApplyMaeEncoder("Embedding", "Features", modelFile).Fit(data).Transform(data), "Embedding");

        using var encoder = MaeEncoder.Open(modelFile, EncoderPooling.Cls);
        Assert.Equal("CPU", encoder.ExecutionProvider);
        var batched = encoder.Embed(images, batchSize: 2);
        Assert.Equal(32, encoder.EmbeddingSize);
        for (int i = 0; i < 5; i++)
            Assert.InRange(viaVector[i].Zip(batched[i], (a, b) => Math.Abs(a - b)).Max(), 0, 1e-5);
        using var expected = OnnxTestModels.Reference(model, pixels, EncoderPooling.Cls);
        Assert.InRange(OnnxTestModels.MaxAbsDiff(expected, batched.SelectMany(f => f).ToArray()), 0, 1e-4);
    }

    [Fact]
    public void GpuRequestFallsBackToCpuWithoutCuda()
    {
        var ml = new MLContext(seed: 1);
        var (images, pixels) = RandomImages(2, seed: 5);
        using var _ = pixels;
        var data = ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { Image = i }));
        var options = new MaeEncoderOptions { ModelFile = modelFile, GpuDeviceId = 0, FallbackToCpu = true, ImageSize = Size };
        var features = Features(ml, ml.Transforms.ApplyMaeEncoder(options).Fit(data).Transform(data));
        using var expected = OnnxTestModels.Reference(model, pixels, EncoderPooling.Cls);
        Assert.InRange(OnnxTestModels.MaxAbsDiff(expected, features.SelectMany(f => f).ToArray()), 0, 1e-4);
        // ML.NET disposes the MLImage objects it resized: use fresh ones
        var (fresh, freshPixels) = RandomImages(2, seed: 5);
        freshPixels.Dispose();
        using var encoder = MaeEncoder.Open(modelFile, gpuDeviceId: 0, fallbackToCpu: true);
        Assert.Equal("CPU", encoder.ExecutionProvider);
        var batched = encoder.Embed(fresh);
        Assert.InRange(OnnxTestModels.MaxAbsDiff(expected, batched.SelectMany(f => f).ToArray()), 0, 1e-4);
    }

    [Fact]
    public void FeaturesTrainAnMLNetClassifier()
    {
        // three colour classes with noise: a random encoder's features separate them easily
        var ml = new MLContext(seed: 1);
        var rng = new Random(0);
        byte[][] palette = [[220, 40, 40], [40, 200, 60], [50, 60, 220]];
        string[] names = ["red", "green", "blue"];
        var rows = new List<ImageRow>();
        for (int i = 0; i < 60; i++)
        {
            int cls = i % 3;
            var rgba = new byte[Size * Size * 4];
            for (int p = 0; p < Size * Size; p++)
            {
                for (int c = 0; c < 3; c++) rgba[4 * p + c] = (byte)Math.Clamp(palette[cls][c] + rng.Next(-60, 61), 0, 255);
                rgba[4 * p + 3] = 255;
            }
            rows.Add(new ImageRow { Image = MLImage.CreateFromPixels(Size, Size, MLPixelFormat.Rgba32, rgba), Label = names[cls] });
        }
        var data = ml.Data.LoadFromEnumerable(rows);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.3, seed: 1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.ApplyMaeEncoder("Features", "Image", modelFile))
            .AppendCacheCheckpoint(ml)
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
        var trained = pipeline.Fit(split.TrainSet);
        var metrics = ml.MulticlassClassification.Evaluate(trained.Transform(split.TestSet));
        output.WriteLine($"LbfgsMaximumEntropy on MAE features: accuracy {metrics.MicroAccuracy:P1}");
        Assert.True(metrics.MicroAccuracy >= 0.9, $"accuracy {metrics.MicroAccuracy}");
    }

    [Fact]
    public void ErrorsNameTheColumnOrFile()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new PathRow { ImagePath = "x.png", Label = "a" } });

        var e = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.ApplyMaeEncoder("Features", "ImagePath", modelFile).Fit(data));
        Assert.Contains("'ImagePath'", e.Message);
        Assert.Contains("expected image", e.Message);

        e = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.ApplyMaeEncoder("Features", "Missing", modelFile).Fit(data));
        Assert.Contains("'Missing'", e.Message);

        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 10);
        var wrongSize = ml.Data.LoadFromEnumerable(new[] { new FeatureRow { Features = new float[10] } }, schema);
        e = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.ApplyMaeEncoder("Embedding", "Features", modelFile).Fit(wrongSize));
        Assert.Contains("'Features'", e.Message);
        Assert.Contains("768", e.Message);
        Assert.Contains("10 values", e.Message);

        var missing = Path.Combine(dir, "nope.onnx");
        var notFound = Assert.Throws<FileNotFoundException>(() => ml.Transforms.ApplyMaeEncoder("F", "Image", missing));
        Assert.Contains(missing, notFound.Message);

        var garbage = Path.Combine(dir, "garbage.onnx");
        File.WriteAllBytes(garbage, [0xff, 0xff, 0xff, 0x01, 0x02, 0x03]);
        var invalid = Assert.Throws<InvalidDataException>(() => ml.Transforms.ApplyMaeEncoder("F", "Image", garbage));
        Assert.Contains(garbage, invalid.Message);

        var clsOnly = Path.Combine(dir, "cls.onnx");
        VitEncoderOnnxExporter.Export(model, clsOnly, new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Cls] });
        e = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.ApplyMaeEncoder("F", "Image", clsOnly, EncoderPooling.Tokens));
        Assert.Contains(clsOnly, e.Message);
        Assert.Contains("mae_tokens", e.Message);

        e = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.ApplyMaeEncoder(new MaeEncoderOptions { ModelFile = modelFile, ImageSize = 224 }));
        Assert.Contains("16x16", e.Message);
    }
}
