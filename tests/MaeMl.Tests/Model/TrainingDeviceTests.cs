using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using Xunit;

namespace MaeMl.Tests.Model;

/// <summary>The device option: parsing, the one-line refusal of CUDA by a CPU-only LibTorch (naming the package to reference), and
/// the same refusal from every trainer's options and the command line. CUDA itself cannot run here (no CUDA LibTorch is served to
/// these machines), so what a GPU run does is not tested.</summary>
public sealed class TrainingDeviceTests
{
    [Fact]
    public void CpuIsTheDefaultAndCudaWithoutACudaLibTorchNamesThePackage()
    {
        Assert.Equal(DeviceType.CPU, TrainingDevice.Resolve(null).type);
        Assert.Equal(DeviceType.CPU, TrainingDevice.Resolve(" CPU ").type);
        Assert.Contains("unknown device 'tpu'", Assert.Throws<ArgumentException>(() => TrainingDevice.Resolve("tpu")).Message);
        Assert.Contains("cuda:N", Assert.Throws<ArgumentException>(() => TrainingDevice.Resolve("cuda:x")).Message);
        Assert.False(torch.cuda.is_available());   // this machine's LibTorch is TorchSharp-cpu's: the refusal below is what users of it see
        foreach (var spec in new[] { "cuda", "cuda:0", "CUDA:1" })
        {
            var e = Assert.Throws<ArgumentException>(() => TrainingDevice.Resolve(spec));
            Assert.Contains("TorchSharp-cuda-linux", e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
    }

    [Fact]
    public void EveryTrainersOptionsCheckTheDevice()
    {
        var cfg = MaePresets.MaeVitTinyPatch4Img32Dec128d2b;
        Action[] checks =
        [
            () => new PretrainOptions { DataDir = "d", OutputDir = "o", Model = cfg, Device = "cuda" }.Validate(),
            () => (FinetuneOptions.SmallImages("t", "o") with { Model = cfg, Device = "cuda" }).Validate(),
            () => new LinearProbeOptions { TrainDir = "t", OutputDir = "o", Model = cfg, Device = "cuda" }.Validate(),
            () => new DenseTrainingOptions { Device = "cuda" }.Validate(),
        ];
        foreach (var check in checks) Assert.Contains("TorchSharp-cuda", Assert.Throws<ArgumentException>(check).Message);
        new DenseTrainingOptions { Device = "cpu" }.Validate();
    }

    /// <summary>The one device check that runs without a GPU: LibTorch's <c>meta</c> device (shapes, no data) stands in for a second
    /// device. The bfloat16 working copy of mixed precision is built by a factory that knows nothing of devices (on the CPU, LibTorch's
    /// default); it must end on the master model's device, or every forward would mix devices. (Pretraining's copy once stayed on the
    /// CPU under a CUDA master.)</summary>
    [Fact]
    public void TheBFloat16WorkingCopyFollowsTheMasterModelsDevice()
    {
        var meta = new torch.Device(DeviceType.META);
        var cfg = TestModels.Tiny with { Depth = 1 };
        using var master = new MaskedAutoencoderViT(cfg);
        master.to(meta);
        using var mixed = new BFloat16MasterWeights<MaskedAutoencoderViT>(master, () => new MaskedAutoencoderViT(cfg));
        Assert.All(mixed.Work.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
        Assert.All(mixed.Work.parameters(), p => Assert.Equal(torch.ScalarType.BFloat16, p.dtype));
        Assert.Equal(DeviceType.META, TrainingDevice.Of(master).type);
    }
}
